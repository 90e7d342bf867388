"""Which features of the lotteries a model's choices follow: CARA, a cruder rule, or position.

A risk-averse rate alone cannot say *why* a model picks the risk-averse option:
a model that avoids every lottery with a loss, or always takes the sure thing,
or favours the last option line, also picks it in some situations. Two views
separate these.

Rule agreement. For each simple rule, the share of situations in which the
model's choice is one the rule would make, over the situations where the rule
says something (a situation without a sure option says nothing about "take the
sure option"). The rules: the CARA (alpha = 0.01) best, the expected-value best,
the least-spread option (smallest standard deviation), a sure option (one prize
with probability 1), an option that cannot lose (no negative prize), and the
first and the last option line. The same shares for the CARA agent itself show
how far each crude rule goes on these situations.

Conditional logit (McFadden 1974). Situation s offers options j = 1..n_s with
features x_sj; the model picks c_s with

    P(c_s = j) = exp(theta . x_sj) / sum_k exp(theta . x_sk).

Features are stake-free (money divided by the situation's stake scale
S_s = max |prize|, the same scale the implied-alpha fit uses): ev = E[X]/S_s,
sd = SD[X]/S_s, sure, loss (the option can lose money), first and last line
(0/1). No intercept: a constant within a situation cancels. theta maximises the
log-likelihood minus ridge/2 ||theta||^2 (the ridge keeps a perfectly separable
chooser finite), found by Newton's method, which converges because the
objective is strictly concave; 95% Wald intervals come from the inverse of the
penalised Hessian. A CARA chooser at low stakes has theta_ev > 0 and
theta_sd < 0; "avoid losses" shows as a large negative theta_loss with
theta_ev and theta_sd near 0; a position habit as theta_first or theta_last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from riskdpo.data.situations import Option, Situation
from riskdpo.evaluation.alpha import scorable, stake_scale

FEATURES = ("ev", "sd", "sure", "loss", "first", "last")
RULES = ("cara", "ev_best", "least_spread", "sure", "no_loss", "first_line", "last_line")
Z95 = 1.959963984540054


def _moments(option: Option) -> tuple[float, float]:
    """E[X] and SD[X] of one lottery."""
    mean = sum(p * x for x, p in zip(option.prizes, option.probs))
    variance = sum(p * (x - mean) ** 2 for x, p in zip(option.prizes, option.probs))
    return mean, math.sqrt(max(variance, 0.0))


def _is_sure(option: Option) -> bool:
    return sum(1 for p in option.probs if p > 0) == 1


def _can_lose(option: Option) -> bool:
    return any(x < 0 and p > 0 for x, p in zip(option.prizes, option.probs))


def _ordered_options(situation: Situation) -> list[Option]:
    """The lotteries in option-line order."""
    by_label = {option.label: option for option in situation.options}
    return [by_label[label] for label in situation.option_labels]


def option_features(situation: Situation) -> np.ndarray:
    """The (n_options, len(FEATURES)) feature matrix of a situation, rows in option-line order."""
    options = _ordered_options(situation)
    scale = stake_scale(situation)
    rows = []
    for line, option in enumerate(options):
        mean, spread = _moments(option)
        rows.append([mean / scale, spread / scale, float(_is_sure(option)), float(_can_lose(option)),
                     float(line == 0), float(line == len(options) - 1)])
    return np.asarray(rows, dtype=float)


def _within(values: Sequence[float], pick: Callable[[Sequence[float]], float]) -> set[int]:
    """Lines whose value equals the picked one (max or min), up to rounding."""
    target = pick(values)
    return {line for line, value in enumerate(values) if math.isclose(value, target, rel_tol=1e-9, abs_tol=1e-9)}


def rule_lines(situation: Situation) -> dict[str, set[int] | None]:
    """For each rule, the option lines (0-based) it would pick; None where the rule says nothing.

    A rule says nothing when it picks every line alike (all options sure, none can
    lose, or all can) or there is nothing to pick (no sure option).
    """
    options = _ordered_options(situation)
    count = len(options)
    moments = [_moments(option) for option in options]
    sure = {line for line, option in enumerate(options) if _is_sure(option)}
    safe = {line for line, option in enumerate(options) if not _can_lose(option)}

    def informative(lines: set[int]) -> set[int] | None:
        return lines if 0 < len(lines) < count else None

    return {
        "cara": {situation.option_labels.index(label) for label in situation.risk_averse if label in situation.option_labels},
        "ev_best": _within([mean for mean, _ in moments], max),
        "least_spread": _within([spread for _, spread in moments], min),
        "sure": informative(sure),
        "no_loss": informative(safe),
        "first_line": {0},
        "last_line": {count - 1},
    }


@dataclass(frozen=True)
class Agreement:
    """Share of situations whose choice is one a rule would make, over the `n` where the rule applies."""

    rate: float
    n: int


def rule_agreement(situations: Sequence[Situation], chosen_lines: Sequence[int | None]) -> dict[str, Agreement]:
    """Per rule, how often the chosen line (None: no valid choice, left out) is one the rule picks."""
    hits = {rule: 0 for rule in RULES}
    counts = {rule: 0 for rule in RULES}
    for situation, line in zip(situations, chosen_lines, strict=True):
        if line is None or not scorable(situation):
            continue
        for rule, lines in rule_lines(situation).items():
            if lines:
                counts[rule] += 1
                hits[rule] += line in lines
    return {rule: Agreement(hits[rule] / counts[rule] if counts[rule] else math.nan, counts[rule]) for rule in RULES}


@dataclass(frozen=True)
class ChoiceLogit:
    """A fitted conditional logit: coefficient, standard error and 95% Wald interval per feature."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    se: tuple[float, ...]
    n: int
    log_likelihood: float

    def interval(self, feature: str) -> tuple[float, float]:
        index = self.features.index(feature)
        return self.coef[index] - Z95 * self.se[index], self.coef[index] + Z95 * self.se[index]

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "log_likelihood": self.log_likelihood,
            "coefficients": {
                name: {"coef": c, "se": s, "interval": list(self.interval(name))}
                for name, c, s in zip(self.features, self.coef, self.se)
            },
        }


def fit_choice_logit(
    situations: Sequence[Situation],
    chosen_lines: Sequence[int | None],
    ridge: float = 1e-2,
    iterations: int = 100,
    tolerance: float = 1e-10,
) -> ChoiceLogit:
    """Maximise sum_s log P(c_s) - ridge/2 ||theta||^2 by Newton's method (see the module docstring).

    Situations without a valid choice (None) or without lotteries for every line are left out.
    """
    blocks = [
        (option_features(situation), line)
        for situation, line in zip(situations, chosen_lines, strict=True)
        if line is not None and scorable(situation)
    ]
    if not blocks:
        raise ValueError("no situation with a valid choice and lotteries for every option line")
    theta = np.zeros(len(FEATURES))

    def penalised(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        value = -0.5 * ridge * theta @ theta
        gradient = -ridge * theta
        hessian = -ridge * np.eye(len(theta))
        for features, line in blocks:
            scores = features @ theta
            shift = scores.max()
            weights = np.exp(scores - shift)
            total = weights.sum()
            probs = weights / total
            value += scores[line] - shift - math.log(total)
            expected = probs @ features
            gradient += features[line] - expected
            centred = features - expected
            hessian -= (centred * probs[:, None]).T @ centred
        return value, gradient, hessian

    for _ in range(iterations):
        value, gradient, hessian = penalised(theta)
        step = np.linalg.solve(hessian, -gradient)
        scale = 1.0
        while penalised(theta + scale * step)[0] < value - 1e-12 and scale > 1e-6:  # backtrack: never step downhill
            scale /= 2
        theta = theta + scale * step
        if np.abs(scale * step).max() < tolerance:
            break
    value, _, hessian = penalised(theta)
    covariance = np.linalg.inv(-hessian)
    return ChoiceLogit(
        features=FEATURES,
        coef=tuple(float(c) for c in theta),
        se=tuple(float(math.sqrt(max(v, 0.0))) for v in np.diag(covariance)),
        n=len(blocks),
        log_likelihood=float(value + 0.5 * ridge * theta @ theta),
    )


def chosen_lines(situations: Sequence[Situation], choices: Mapping[tuple[str, str], str | None]) -> list[int | None]:
    """The 0-based option line of each situation's chosen label, from {(sheet, situation_id): label or None}."""
    lines: list[int | None] = []
    for situation in situations:
        label = choices.get((situation.sheet, situation.situation_id))
        lines.append(situation.option_labels.index(label) if label in situation.option_labels else None)
    return lines
