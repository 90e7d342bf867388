"""The risk aversion a model's choices imply: a CARA coefficient fitted by maximum likelihood.

Choice model. In situation s, option j is a lottery with prizes x_ji and
probabilities p_ji. A CARA agent with coefficient alpha values it at its
certainty equivalent CE_j(alpha) (as `riskdpo.data.expected_utility.certainty_equivalent`:
CE = w - log1p(sum_i p_i expm1(-alpha (x_i - w))) / alpha with w the worst
prize, so prizes of 1e94 do not overflow). Stakes differ by orders of magnitude
between situations, so values are made stake-free by the situation's scale

    S_s = max |x_ji| over its outcomes with p_ji > 0        (1 when all are 0)
    u_sj(alpha) = CE_j(alpha) / S_s                         (in [-1, 1])

and the agent picks option j with logit (softmax) probability

    P(j | s; alpha, lam) = exp(lam u_sj) / sum_k exp(lam u_sk)

where lam in [0, `MAX_PRECISION`] is the choice precision (lam = 0: uniform
random choices, lam -> inf: always the CE-best option). Given the observed
choices c_s,

    LL(alpha, lam) = sum_s w_s [lam u_{s c_s}(alpha) - log sum_k exp(lam u_sk(alpha))]

with w_s = 1, and the profile LL(alpha) = max_lam LL(alpha, lam); LL is concave
in lam, which is maximised by safeguarded Newton steps.

Estimate: the maximiser of the profile over log alpha in [1e-5, 10]. The profile
is first evaluated on a log-spaced grid (`ALPHA_GRID`, with lam on
`PRECISION_GRID`) to find the best region, then maximised by golden-section
search on log alpha between the best grid point's neighbours, with lam exact
(continuous) at every step, so the estimate is the maximiser itself, not a
parabola's vertex.

Interval: the profile-likelihood (likelihood-ratio) interval, the alphas
whose profile lies within chi2_1(95%) / 2 = 1.92 of the maximum,

    { alpha : 2 (LL(alpha_hat) - LL(alpha)) <= 3.841 },

its ends found by bisection on log alpha between grid points. It is
deterministic and needs no resampling; in simulation (CARA agents, alpha
0.001 .. 0.1, logit noise, mixed stakes; tests/evaluation/test_alpha.py) it
covers the true alpha at the nominal rate, where the former bootstrap
percentiles of a grid estimate covered 0.915. It assumes the choice model; as a
check that does not, `bootstrap` > 0 adds a seeded percentile bootstrap over
situations (replicate b draws n situations with replacement, multinomial
weights w_s, and is refitted by the same estimator, all replicates at once):
``bootstrap_interval``, the 2.5% and 97.5% percentiles of the replicates'
alpha.

Bounds. The fit is confined to [1e-5, 10] and lam to [0, 1e4]; `AlphaFit.at_bounds`
lists every quantity that sits on such a bound ("estimate", "interval_low",
"interval_high", "precision"): a risk-neutral or risk-seeking model lands on
the lower alpha bound, a deterministic chooser on the top precision, and the
true value may lie beyond. The report flags each.

Verdict against the risk-averse target alpha = 0.01: "below" when the
interval lies entirely below it, "above" when entirely above, "near" when it
contains it and stays within a factor `NEAR_FACTOR` = 10 of it (so it excludes
both a nearly risk-neutral chooser and the alpha = 0.10 "too risk-averse"
agent), and "undetermined" when it contains it but is wider than that: too
few or too noisy choices to say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from riskdpo.data.expected_utility import RISK_AVERSE_ALPHA
from riskdpo.data.situations import Situation
from riskdpo.data.verify import has_lotteries
from riskdpo.evaluation.logit import MAX_PRECISION, PRECISION_GRID, likelihood_surface, max_over_precision

#: "near" 0.01 means an interval within this factor of it on both sides.
NEAR_FACTOR = 10.0

#: CARA coefficients tried: 1e-5 .. 10, twelve per decade.
ALPHA_GRID = np.logspace(-5, 1, 73)
#: Bootstrap replicates of the optional check interval, by default none: the
#: reported interval is the profile-likelihood one, which needs no resampling,
#: while each replicate is a full refit (about 40 ms per replicate on 300
#: situations on a 2-core CPU: 1000 would add ~40 s to every model's evaluation).
DEFAULT_BOOTSTRAP = 0
#: The interval's method, as reported.
INTERVAL_METHOD = "profile likelihood, 95% (likelihood-ratio test inverted, chi2 with 1 df)"
#: Half the 95% quantile of chi2 with 1 degree of freedom.
_PROFILE_DROP = 3.841458820694124 / 2
#: Bootstrap replicates refitted together (bounds memory at [this, n, K, outcomes] floats).
_COLUMNS_AT_ONCE = 128
#: Bisection steps for each end of the interval.
_BISECTION_STEPS = 30
#: Golden-section steps on log alpha (the bracket shrinks to 0.618^25 = 6e-6 of two grid steps).
_GOLDEN_STEPS = 25


@dataclass
class UtilityTable:
    """The situations with lotteries, as arrays, and their stake-free values on the grid.

    ``positions``: for each row s, the position of its situation in the list
    given to `utility_table`; ``labels``: the option labels of row s in column
    order; ``prizes``/``probs``: [rows, K, M] outcomes (probability 0 pads);
    ``scales``: S_s; ``values``: u[alpha, s, j] on ``grid``, -inf where a
    situation has fewer than K options.
    """

    grid: np.ndarray
    positions: list[int]
    labels: list[list[str]]
    values: np.ndarray
    prizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class AlphaFit:
    """The fitted coefficient, its interval, how it compares with 0.01, and bound flags."""

    estimate: float | None
    interval: list[float] | None
    verdict: str | None
    bootstrap_interval: list[float] | None = None
    precision: float | None = None
    situations: int = 0
    log_likelihood: float | None = None
    log_likelihood_random: float | None = None
    at_bounds: list[str] = field(default_factory=list)
    bootstrap: int = 0
    reason: str | None = None

    @property
    def at_grid_edge(self) -> bool:
        """True when the estimate sits on a bound of the fitted range."""
        return "estimate" in self.at_bounds

    def to_json(self) -> dict:
        return {
            "estimate": self.estimate,
            "interval": self.interval,
            "interval_method": INTERVAL_METHOD if self.interval else None,
            "bootstrap_interval": self.bootstrap_interval,
            "verdict": self.verdict,
            "target": RISK_AVERSE_ALPHA,
            "precision": self.precision,
            "situations": self.situations,
            "log_likelihood": self.log_likelihood,
            "log_likelihood_random": self.log_likelihood_random,
            "at_grid_edge": self.at_grid_edge,
            "at_bounds": list(self.at_bounds),
            "bootstrap": self.bootstrap,
            "reason": self.reason,
        }


def scorable(situation: Situation) -> bool:
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
    """The lotteries of the situations that carry them (others are left out) and u on `grid`."""
    positions = [position for position, situation in enumerate(situations) if scorable(situation)]
    usable = [situations[position] for position in positions]
    width = max((len(situation.option_labels) for situation in usable), default=0)
    depth = max((len(option.prizes) for situation in usable for option in situation.options), default=0)
    prizes = np.zeros((len(usable), width, depth))
    probs = np.zeros((len(usable), width, depth))
    for row, situation in enumerate(usable):
        by_label = {option.label: option for option in situation.options}
        for column, label in enumerate(situation.option_labels):
            option = by_label[label]
            total = sum(option.probs)
            prizes[row, column, : len(option.prizes)] = option.prizes
            probs[row, column, : len(option.probs)] = [p / total for p in option.probs]
    scales = np.array([stake_scale(situation) for situation in usable])
    table = UtilityTable(
        grid=np.asarray(grid, dtype=float),
        positions=positions,
        labels=[list(situation.option_labels) for situation in usable],
        values=np.zeros((len(grid), len(usable), width)),
        prizes=prizes,
        probs=probs,
        scales=scales,
    )
    table.values = stake_free_values(table, np.asarray(grid, dtype=float), np.arange(len(usable)))
    return table


def stake_free_values(table: UtilityTable, alphas: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """u[a, s, j] = CE_j(alphas[a]) / S_s for the table's `rows`; -inf for missing options."""
    prizes, probs = table.prizes[rows], table.probs[rows]
    present = probs.sum(axis=-1) > 0
    worst = np.where(probs > 0, prizes, np.inf).min(axis=-1, initial=np.inf)
    worst = np.where(present, worst, 0.0)
    alpha = np.asarray(alphas, dtype=float)[:, None, None, None]
    # A gap wider than the largest float (prizes of -1e308 and 1e308) is inf, and
    # expm1(-alpha * inf) = -1 is the right limit: such a prize adds nothing to the sum.
    with np.errstate(over="ignore", invalid="ignore"):
        gaps = np.where(probs > 0, prizes - worst[..., None], 0.0)
        inner = (probs * np.expm1(-alpha * gaps)).sum(axis=-1)
        values = worst - np.log1p(inner) / alpha[..., 0]
    values = np.where(alpha[..., 0] == 0, (probs * prizes).sum(axis=-1), values)
    return np.where(present, values / table.scales[rows][:, None], -np.inf)


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
    none left the fit is empty and says why. `bootstrap` = 0 gives no interval.
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

    rows_, chosen_ = np.asarray(rows), np.asarray(chosen)
    n = len(rows)
    weights = np.ones((n, 1 + bootstrap))
    if bootstrap:
        rng = np.random.default_rng(seed)
        weights[:, 1:] = rng.multinomial(n, np.full(n, 1.0 / n), size=bootstrap).T
    parts = [
        _maximise(table, rows_, chosen_, weights[:, i : i + _COLUMNS_AT_ONCE])
        for i in range(0, weights.shape[1], _COLUMNS_AT_ONCE)
    ]
    log_alphas, log_likelihoods, precisions = (np.concatenate(values) for values in zip(*parts))
    low, high = _profile_interval(table, rows_, chosen_, log_alphas[0], log_likelihoods[0])
    log_grid = np.log(table.grid)
    ends = {"estimate": log_alphas[0], "interval_low": math.log(low), "interval_high": math.log(high)}
    at_bounds = [name for name, value in ends.items() if _on_bound(value, log_grid)]
    if precisions[0] in (0.0, MAX_PRECISION):
        at_bounds.append("precision")
    bootstrap_interval = None
    if bootstrap:
        bootstrap_interval = [float(v) for v in np.exp(np.percentile(log_alphas[1:], [2.5, 97.5]))]
    options = np.isfinite(table.values[0, rows_]).sum(axis=1)
    return AlphaFit(
        estimate=math.exp(log_alphas[0]),
        interval=[low, high],
        verdict=alpha_verdict(low, high),
        bootstrap_interval=bootstrap_interval,
        precision=float(precisions[0]),
        situations=n,
        log_likelihood=float(log_likelihoods[0]),
        log_likelihood_random=float(-np.log(options).sum()),
        at_bounds=at_bounds,
        bootstrap=bootstrap,
    )


def _profile_interval(
    table: UtilityTable, rows: np.ndarray, chosen: np.ndarray, log_estimate: float, top: float
) -> tuple[float, float]:
    """The alphas whose profile LL lies within `_PROFILE_DROP` of `top`, the maximum at `log_estimate`.

    From the estimate outwards, the first grid point below the cut brackets
    each end with its inner neighbour (or the estimate), and bisection on the
    continuous profile finds the crossing; with no grid point below the cut on
    a side, that end is the grid bound.
    """
    one = np.ones((len(rows), 1))

    def profile(log_alpha: float) -> float:
        values = stake_free_values(table, np.exp(np.array([log_alpha])), rows)
        return float(max_over_precision(values, chosen, one, np.ones(1))[0][0])

    cut = top - _PROFILE_DROP
    log_grid = np.log(table.grid)
    everywhere = np.ones((len(rows), len(log_grid)))
    grid_profile, _ = max_over_precision(table.values[:, rows], chosen, everywhere, np.ones(len(log_grid)))
    ends = []
    for side in (-1, 1):
        order = range(len(log_grid) - 1, -1, -1) if side < 0 else range(len(log_grid))
        outward = [i for i in order if side * (log_grid[i] - log_estimate) > 0]
        inner, end = log_estimate, None
        for i in outward:
            if grid_profile[i] < cut:
                end = log_grid[i]
                break
            inner = log_grid[i]
        if end is None:
            ends.append(log_grid[0] if side < 0 else log_grid[-1])
            continue
        for _ in range(_BISECTION_STEPS):
            middle = (inner + end) / 2
            inner, end = (middle, end) if profile(middle) >= cut else (inner, middle)
        ends.append((inner + end) / 2)
    return math.exp(ends[0]), math.exp(ends[1])


def _on_bound(log_alpha: float, log_grid: np.ndarray) -> bool:
    return bool(min(abs(log_alpha - log_grid[0]), abs(log_alpha - log_grid[-1])) < 1e-6)


def _maximise(
    table: UtilityTable, rows: np.ndarray, chosen: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log alpha, profile LL, lam) at the maximum of each column of situation weights [n, B].

    The grid surface LL[alpha, lam, b] (one matrix product per grid alpha)
    finds each column's best grid alpha; golden-section search on log alpha
    between its neighbours, with lam maximised exactly at each step, refines it.
    """
    utilities = table.values[:, rows, :]
    surface = likelihood_surface(utilities, chosen, weights)
    best = surface.max(axis=1).argmax(axis=0)
    log_grid = np.log(table.grid)
    low = log_grid[np.maximum(best - 1, 0)]
    high = log_grid[np.minimum(best + 1, len(log_grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2

    start = PRECISION_GRID[surface.max(axis=0).argmax(axis=0)]  # best grid lam of each column

    def profile(log_alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal start
        values = stake_free_values(table, np.exp(log_alphas), rows)  # [B, n, K]
        log_likelihoods, start = max_over_precision(values, chosen, weights, start)
        return log_likelihoods, start

    left, right = high - ratio * (high - low), low + ratio * (high - low)
    left_ll, right_ll = profile(left)[0], profile(right)[0]
    for _ in range(_GOLDEN_STEPS):
        keep_left = left_ll >= right_ll
        high = np.where(keep_left, right, high)
        low = np.where(keep_left, low, left)
        new = np.where(keep_left, high - ratio * (high - low), low + ratio * (high - low))
        new_ll = profile(new)[0]
        left, right, left_ll, right_ll = (
            np.where(keep_left, new, right),
            np.where(keep_left, left, new),
            np.where(keep_left, new_ll, right_ll),
            np.where(keep_left, left_ll, new_ll),
        )
    candidates = np.stack([low, (low + high) / 2, high])  # the bracket ends may be grid bounds
    scores = np.stack([profile(candidate)[0] for candidate in candidates])
    pick = scores.argmax(axis=0)
    log_alphas = candidates[pick, np.arange(weights.shape[1])]
    log_likelihoods, precisions = profile(log_alphas)
    return log_alphas, log_likelihoods, precisions
