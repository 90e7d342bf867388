"""The risk aversion a model's choices imply: a CARA coefficient fitted by maximum likelihood.

Choice model. In situation s, option j is a lottery with prizes x_ji and
probabilities p_ji. A CARA agent with coefficient alpha values it at its
certainty equivalent CE_j(alpha) (`riskdpo.data.expected_utility.certainty_equivalent`, log
space, so prizes of 1e94 do not overflow). Stakes differ by orders of magnitude
between situations, so values are made stake-free by the situation's scale

    S_s = max |x_ji| over its outcomes with p_ji > 0        (1 when all are 0)
    u_sj(alpha) = CE_j(alpha) / S_s                         (in [-1, 1])

and the agent picks option j with logit (softmax) probability

    P(j | s; alpha, lam) = exp(lam u_sj) / sum_k exp(lam u_sk)

where lam >= 0 is the choice precision (lam = 0: uniform random choices,
lam -> inf: always the CE-best option). Given the observed choices c_s,

    LL(alpha, lam) = sum_s w_s [lam u_{s c_s}(alpha) - log sum_k exp(lam u_sk(alpha))]

with w_s = 1. The estimate maximises the profile likelihood
LL(alpha) = max_lam LL(alpha, lam) over a log-spaced grid of alpha
(`ALPHA_GRID`, 1e-5 .. 10) and of lam (`PRECISION_GRID`), then refines alpha
locally by the vertex of the parabola through the profile at the best grid point
and its two neighbours (in log alpha). Certainty equivalents do not depend on the
model, so the table u[alpha, s, j] is computed once per situation set
(`utility_table`) and shared by every model.

Interval: a seeded nonparametric bootstrap over situations: replicate b draws
n situations with replacement (multinomial weights w_s), refits alpha by the
same estimator, and the 95% interval is the 2.5% and 97.5% percentiles of the
replicates' log alpha. Every replicate's likelihood surface is one matrix
product of the per-situation log-likelihoods with the weights.

Verdict against the risk-averse target alpha = 0.01: "below" when the
interval lies entirely below it, "above" when entirely above, "near" when it
contains it and stays within a factor `NEAR_FACTOR` = 10 of it (so it excludes
both a nearly risk-neutral chooser and the alpha = 0.10 "too risk-averse"
agent), and "undetermined" when it contains it but is wider than that: too
few or too noisy choices to say. An estimate on the first or last grid point is flagged
(`at_grid_edge`): a risk-neutral or risk-seeking model lands on the lower edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from riskdpo.data.situations import Situation
from riskdpo.data.expected_utility import RISK_AVERSE_ALPHA, certainty_equivalent
from riskdpo.data.verify import has_lotteries

#: "near" 0.01 means an interval within this factor of it on both sides.
NEAR_FACTOR = 10.0

#: CARA coefficients tried: 1e-5 .. 10, twelve per decade.
ALPHA_GRID = np.logspace(-5, 1, 73)
#: Choice precisions tried: 0 (random choice) and 0.1 .. 10,000, five per decade.
PRECISION_GRID = np.concatenate([[0.0], np.logspace(-1, 4, 26)])
#: Bootstrap replicates for the interval, by default.
DEFAULT_BOOTSTRAP = 1000


@dataclass
class UtilityTable:
    """Stake-free certainty equivalents u[alpha, s, j] of situations with lotteries.

    ``positions``: for each row s, the position of its situation in the list
    given to `utility_table`; ``labels``: the option labels of row s in column
    order; ``values``: [len(grid), rows, K] with -inf where a situation has
    fewer than K options.
    """

    grid: np.ndarray
    positions: list[int]
    labels: list[list[str]]
    values: np.ndarray


@dataclass
class AlphaFit:
    """The fitted coefficient, its bootstrap interval and how it compares with 0.01."""

    estimate: float | None
    interval: list[float] | None
    verdict: str | None
    precision: float | None = None
    situations: int = 0
    log_likelihood: float | None = None
    log_likelihood_random: float | None = None
    at_grid_edge: bool = False
    bootstrap: int = 0
    reason: str | None = None

    def to_json(self) -> dict:
        return {
            "estimate": self.estimate,
            "interval": self.interval,
            "verdict": self.verdict,
            "target": RISK_AVERSE_ALPHA,
            "precision": self.precision,
            "situations": self.situations,
            "log_likelihood": self.log_likelihood,
            "log_likelihood_random": self.log_likelihood_random,
            "at_grid_edge": self.at_grid_edge,
            "bootstrap": self.bootstrap,
            "reason": self.reason,
        }


def _scorable(situation: Situation) -> bool:
    """True when every option label of the prompt has a lottery."""
    labels = {option.label for option in situation.options}
    return has_lotteries(situation) and set(situation.option_labels) <= labels


def stake_scale(situation: Situation) -> float:
    """S_s: the largest absolute prize with positive probability (1 when all are 0)."""
    largest = max(
        (abs(x) for option in situation.options for x, p in zip(option.prizes, option.probs) if p > 0), default=0.0
    )
    return largest if largest > 0 else 1.0


def utility_table(situations: Sequence[Situation], grid: np.ndarray = ALPHA_GRID) -> UtilityTable:
    """u[alpha, s, j] for the situations that carry lotteries (others are left out)."""
    positions = [position for position, situation in enumerate(situations) if _scorable(situation)]
    usable = [situations[position] for position in positions]
    width = max((len(situation.option_labels) for situation in usable), default=0)
    values = np.full((len(grid), len(usable), width), -np.inf)
    for row, situation in enumerate(usable):
        scale = stake_scale(situation)
        by_label = {option.label: option for option in situation.options}
        for column, label in enumerate(situation.option_labels):
            option = by_label[label]
            for g, alpha in enumerate(grid):
                values[g, row, column] = certainty_equivalent(option.prizes, option.probs, float(alpha)) / scale
    return UtilityTable(
        grid=np.asarray(grid, dtype=float),
        positions=positions,
        labels=[list(situation.option_labels) for situation in usable],
        values=values,
    )


def alpha_verdict(low: float, high: float) -> str:
    """below / above / near / undetermined: where the interval [low, high] lies against alpha = 0.01."""
    if high < RISK_AVERSE_ALPHA:
        return "below"
    if low > RISK_AVERSE_ALPHA:
        return "above"
    if RISK_AVERSE_ALPHA / NEAR_FACTOR <= low and high <= RISK_AVERSE_ALPHA * NEAR_FACTOR:
        return "near"
    return "undetermined"


def fit_alpha(
    table: UtilityTable,
    choices: Sequence[str | None],
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> AlphaFit:
    """Fit alpha to `choices`, the chosen label (None: none) of each situation given to `utility_table`.

    Situations without lotteries or without a valid choice are left out; with
    none left the fit is empty and says why.
    """
    rows, chosen = [], []
    for row, (position, labels) in enumerate(zip(table.positions, table.labels)):
        label = choices[position]
        if label is not None and label in labels:
            rows.append(row)
            chosen.append(labels.index(label))
    if not rows:
        reason = (
            "no situation has option lotteries (prizes and probabilities)"
            if not table.positions
            else "no valid choice on a situation with option lotteries"
        )
        return AlphaFit(estimate=None, interval=None, verdict=None, reason=reason)

    utilities = table.values[:, rows, :]
    n = len(rows)
    rng = np.random.default_rng(seed)
    weights = np.ones((n, 1 + bootstrap))
    if bootstrap:
        weights[:, 1:] = rng.multinomial(n, np.full(n, 1.0 / n), size=bootstrap).T
    surface = _likelihood_surface(utilities, np.asarray(chosen), weights)
    profile = surface.max(axis=1)
    best_precision = surface.argmax(axis=1)
    log_alphas = np.array([_refined_log_alpha(profile[:, b], table.grid) for b in range(weights.shape[1])])

    best = int(profile[:, 0].argmax())
    estimate = math.exp(log_alphas[0])
    interval = None
    verdict = None
    if bootstrap:
        low, high = np.exp(np.percentile(log_alphas[1:], [2.5, 97.5]))
        interval = [float(low), float(high)]
        verdict = alpha_verdict(low, high)
    options = np.isfinite(utilities[0]).sum(axis=1)
    return AlphaFit(
        estimate=estimate,
        interval=interval,
        verdict=verdict,
        precision=float(PRECISION_GRID[best_precision[best, 0]]),
        situations=n,
        log_likelihood=float(profile[best, 0]),
        log_likelihood_random=float(-np.log(options).sum()),
        at_grid_edge=best in (0, len(table.grid) - 1),
        bootstrap=bootstrap,
    )


def _likelihood_surface(utilities: np.ndarray, chosen: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """LL(alpha, lam) under each column of situation weights: [G alphas, L precisions, replicates].

    Per grid alpha, the per-situation log P(c_s | s; alpha, lam) [L, n] is
    computed and multiplied with the weights [n, replicates], so memory stays
    at [L, n, K] whatever the grid.
    """
    valid = np.isfinite(utilities[0])[None, :, :]
    surface = np.empty((utilities.shape[0], len(PRECISION_GRID), weights.shape[1]))
    for g, values in enumerate(utilities):
        scaled = np.where(valid, PRECISION_GRID[:, None, None] * np.where(valid, values, 0.0), -np.inf)
        top = scaled.max(axis=-1, keepdims=True)
        log_norm = top[..., 0] + np.log(np.exp(scaled - top).sum(axis=-1))
        picked = np.take_along_axis(scaled, chosen[None, :, None], axis=-1)[..., 0]
        surface[g] = (picked - log_norm) @ weights
    return surface


def _refined_log_alpha(profile: np.ndarray, grid: np.ndarray) -> float:
    """log alpha at the profile's maximum, refined by a parabola through its neighbours."""
    best = int(profile.argmax())
    log_grid = np.log(grid)
    if best == 0 or best == len(grid) - 1:
        return float(log_grid[best])
    left, centre, right = profile[best - 1 : best + 2]
    curvature = left - 2 * centre + right
    offset = 0.0 if curvature >= 0 else 0.5 * (left - right) / curvature
    step = log_grid[best + 1] - log_grid[best]
    return float(log_grid[best] + np.clip(offset, -1.0, 1.0) * step)
