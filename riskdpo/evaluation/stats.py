"""Rates with confidence intervals, and paired comparisons of two models.

Rates: k of n situations fall in a category; the 95% interval is Wilson's score
interval (Wilson 1927), which stays inside [0, 1] and keeps its coverage for
rates near 0 or 1 and small n, where the textbook Wald interval fails:

    centre = (p + z^2 / 2n) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2),   p = k / n

Paired comparison of model B with model A on the same situations: each
situation gives a pair of indicators (A chose risk-averse, B chose risk-averse).
With the 2x2 counts

    both = #(1, 1)   a_only = #(1, 0)   b_only = #(0, 1)   neither = #(0, 0)

the difference of rates is D = p_B - p_A = (b_only - a_only) / n. Its interval
is Newcombe's (1998) method 10, "square and add" of the two Wilson intervals
(l_A, u_A), (l_B, u_B) corrected for the correlation of the paired rates:

    L = D - sqrt((p_B - l_B)^2 - 2 phi (p_B - l_B)(u_A - p_A) + (u_A - p_A)^2)
    U = D + sqrt((u_B - p_B)^2 - 2 phi (u_B - p_B)(p_A - l_A) + (p_A - l_A)^2)

where phi is the phi coefficient of the 2x2 table, with Newcombe's continuity
adjustment: with A = both*neither - a_only*b_only and the product M of the four
margins, phi = (A - n/2)/sqrt(M) when A > n/2, 0 when 0 <= A <= n/2, and
A/sqrt(M) when A < 0 (0 when a margin is empty).

The test of "no difference" is McNemar's exact test: under the null each
discordant pair is equally likely to favour A or B, so
p = min(1, 2 P(X <= min(a_only, b_only))), X ~ Binomial(a_only + b_only, 1/2).

Several sampled answers per situation are not independent: answers to the same
prompt agree more often than answers to different prompts, so a Wilson interval
over all answers would be too narrow. `cluster_summary` pools the answers,

    rate_c = sum_s k_{s,c} / sum_s n_s      (k_{s,c}: answers of situation s in category c)

and takes its 95% interval from a seeded cluster bootstrap: B replicates each
draw S situations with replacement (all their answers together) and recompute
rate_c; the interval is the 2.5% and 97.5% percentiles of the B replicate rates
(nearest rank: sorted values at floor(0.025 B) and ceil(0.975 B) - 1). With one
answer per situation the clusters are single items and `summarize_categories`
(Wilson) is used instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

#: z for a two-sided 95% interval, the 0.975 quantile of the standard normal.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for the rate successes/n; (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # the interval always holds p; at k = 0 and k = n its end is exactly 0 or 1
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


@dataclass(frozen=True)
class RateSummary:
    """Counts, rates and Wilson intervals of exclusive categories over n items."""

    n: int
    counts: dict[str, int]
    rates: dict[str, float]
    intervals: dict[str, list[float]]

    def to_json(self) -> dict:
        return {"n": self.n, "counts": self.counts, "rates": self.rates, "intervals": self.intervals}


def summarize_categories(categories: Iterable[str], names: Sequence[str]) -> RateSummary:
    """Count each of `names` among `categories` (one per item), with rates and intervals.

    Every item must fall in one of `names`, so the rates sum to 1.
    """
    items = list(categories)
    unknown = set(items) - set(names)
    if unknown:
        raise ValueError(f"categories outside {list(names)}: {sorted(unknown)}")
    n = len(items)
    counts = {name: items.count(name) for name in names}
    rates = {name: (counts[name] / n if n else 0.0) for name in names}
    intervals = {name: list(wilson_interval(counts[name], n)) for name in names}
    return RateSummary(n, counts, rates, intervals)


def cluster_summary(
    clusters: Sequence[Sequence[str]], names: Sequence[str], replicates: int, seed: int
) -> RateSummary:
    """Pooled counts and rates of `names` over clustered items, with cluster-bootstrap intervals.

    `clusters` holds each situation's categories (one per answer); see the
    module docstring for the rate and the interval.
    """
    pooled = summarize_categories([item for cluster in clusters for item in cluster], names)
    if not clusters or replicates < 1:
        return pooled
    counts = np.array([[list(cluster).count(name) for name in names] for cluster in clusters], dtype=np.int64)
    sizes = counts.sum(axis=1)
    draws = np.random.default_rng(seed).integers(0, len(clusters), size=(replicates, len(clusters)))
    totals = sizes[draws].sum(axis=1)
    rates = np.sort(counts[draws].sum(axis=1) / np.maximum(totals, 1)[:, None], axis=0)
    low, high = math.floor(0.025 * replicates), math.ceil(0.975 * replicates) - 1
    intervals = {name: [float(rates[low, column]), float(rates[high, column])] for column, name in enumerate(names)}
    return RateSummary(pooled.n, pooled.counts, pooled.rates, intervals)


@dataclass(frozen=True)
class PairedTable:
    """The 2x2 table of paired indicators (A, B) over the same items."""

    both: int
    a_only: int
    b_only: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.a_only + self.b_only + self.neither

    @classmethod
    def from_pairs(cls, a: Sequence[bool], b: Sequence[bool]) -> "PairedTable":
        if len(a) != len(b):
            raise ValueError("paired indicators must have the same length")
        pairs = list(zip(map(bool, a), map(bool, b)))
        return cls(
            both=pairs.count((True, True)),
            a_only=pairs.count((True, False)),
            b_only=pairs.count((False, True)),
            neither=pairs.count((False, False)),
        )


def paired_difference_interval(table: PairedTable, z: float = Z95) -> tuple[float, tuple[float, float]]:
    """D = p_B - p_A and its Newcombe method-10 interval (see module docstring)."""
    n = table.n
    if n == 0:
        return 0.0, (-1.0, 1.0)
    a_successes = table.both + table.a_only
    b_successes = table.both + table.b_only
    p_a, p_b = a_successes / n, b_successes / n
    l_a, u_a = wilson_interval(a_successes, n, z)
    l_b, u_b = wilson_interval(b_successes, n, z)
    phi = _newcombe_phi(table)
    lower_sq = (p_b - l_b) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a) + (u_a - p_a) ** 2
    upper_sq = (u_b - p_b) ** 2 - 2 * phi * (u_b - p_b) * (p_a - l_a) + (p_a - l_a) ** 2
    difference = p_b - p_a
    lower = max(-1.0, difference - math.sqrt(max(0.0, lower_sq)))
    upper = min(1.0, difference + math.sqrt(max(0.0, upper_sq)))
    return difference, (lower, upper)


def _newcombe_phi(table: PairedTable) -> float:
    """Phi coefficient of the 2x2 table with Newcombe's continuity adjustment."""
    margins = (
        (table.both + table.a_only)
        * (table.b_only + table.neither)
        * (table.both + table.b_only)
        * (table.a_only + table.neither)
    )
    if margins == 0:
        return 0.0
    cross = table.both * table.neither - table.a_only * table.b_only
    half_n = table.n / 2
    if cross > half_n:
        return (cross - half_n) / math.sqrt(margins)
    if cross >= 0:
        return 0.0
    return cross / math.sqrt(margins)


def mcnemar_exact(table: PairedTable) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (1.0 when there are none)."""
    discordant = table.a_only + table.b_only
    if discordant == 0:
        return 1.0
    smaller = min(table.a_only, table.b_only)
    term, total = 1, 1  # C(discordant, 0), summed exactly in integers
    for k in range(1, smaller + 1):
        term = term * (discordant - k + 1) // k
        total += term
    return min(1.0, 2 * total / 2**discordant)
