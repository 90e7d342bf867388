"""Expected utility of lotteries: exact best options, finite certainty equivalents.

Agents (`docs/data-formats.md`): risk-averse CARA with alpha = 0.01, "too risk-averse" CARA with
alpha = 0.10, and risk-neutral (linear). CARA is wealth-independent, so utility
is taken over prizes x_i (changes in wealth) with probabilities p_i:

    EU_alpha = sum_i p_i (1 - exp(-alpha x_i)) = 1 - S_alpha,   S_alpha = sum_i p_i exp(-alpha x_i)

and options are ranked by the certainty equivalent

    CE_alpha = -ln(S_alpha) / alpha        (in dollars; CE_0 = sum_i p_i x_i)

Labels are decided exactly, because a float cannot be trusted at the stakes of
the sheets (prizes up to +-1e94): 92% of $6.3e56, 7% of -$8.28e57, 1% of $5,600
has an expected value of about $56, which float summation loses entirely.

* Numbers. A prize read from a sheet or prompt is a finite decimal; the float
  that holds it stands for the shortest decimal that rounds to it (``repr``).
  A probability is a percent divided by the percents' total, so it stands for
  that decimal or for a simple fraction (33/99.5 = 66/199) when one with a
  denominator up to 10^6 rounds to the same float (`exact_probability`).
  Each lottery is renormalised exactly and outcomes with equal prizes merged.
* Linear agent: sum_i p_i x_i in `fractions.Fraction`; ties are exact equality.
* CARA agent: EU(a) - EU(b) = S(b) - S(a) = sum_z c_z exp(-alpha z) with
  c_z = p_b(z) - p_a(z) over the prizes z of both. Outcomes the two share
  cancel exactly (so a shared worst prize of -$1e11 cannot swamp a difference
  of dollars), and the sign of the rest is evaluated in `decimal` with the
  smallest remaining prize z0 factored out, sum_z c_z exp(-alpha (z - z0)),
  at a precision doubled until it exceeds the rounding bound. Two options tie
  only when their merged distributions are identical: by the
  Lindemann-Weierstrass theorem exp of distinct rationals are linearly
  independent over the rationals, so no other pair of lotteries has equal
  CARA utility for a rational alpha. (Beyond `MAX_DIGITS` digits, never met by
  decimal prizes of a sheet, an unresolved pair would count as tied.)

Floats remain for display and for the implied-alpha fit: `certainty_equivalent`
computes CE = w - log1p(sum_i p_i expm1(-alpha (x_i - w))) / alpha with w the
worst prize, so it neither overflows nor loses tiny prizes to rounding.
"""


from __future__ import annotations

import ast
import math
import re
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

RISK_AVERSE_ALPHA = 0.01
TOO_RISK_AVERSE_ALPHA = 0.10

#: Verbal probability phrases of the prompts and the percent each stands for.
VERBAL_PROBABILITIES: dict[str, int] = {
    "Certainly will give": 100,
    "Almost certain to give": 95,
    "Highly likely to give": 90,
    "Very likely to give": 85,
    "Likely to give": 80,
    "Probable to give": 75,
    "Fairly likely to give": 70,
    "Somewhat likely to give": 65,
    "More than a half-chance of": 60,
    "Just more than a half-chance of": 55,
    "A half-chance of": 50,
    "Just less than a half-chance of": 45,
    "Less than a half-chance of": 40,
    "Somewhat unlikely to give": 35,
    "Fairly unlikely to give": 30,
    "Improbable to give": 25,
    "Unlikely to give": 20,
    "Very unlikely to give": 15,
    "Highly unlikely to give": 10,
    "Almost certainly won't give": 5,
    "Certainly won't give": 0,
}

#: Largest decimal precision tried when deciding the order of two CARA options.
MAX_DIGITS = 4000
#: Denominators up to this are tried when reading a probability as a fraction.
_SIMPLE_DENOMINATOR = 10**6
#: Gaps between prizes are capped here before becoming floats (two prizes of +-1e308 differ by 2e308).
_FLOAT_CEILING = Fraction(10**300)

Lottery = tuple[str, Sequence[float], Sequence[float]]


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))) without overflow; -inf for an empty sequence."""
    if not values:
        return -math.inf
    top = max(values)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


@lru_cache(maxsize=65536)
def exact_prize(value: float) -> Fraction:
    """The decimal a prize float stands for: the shortest one that rounds to it (``repr``)."""
    return Fraction(repr(float(value)))


@lru_cache(maxsize=65536)
def exact_probability(value: float) -> Fraction:
    """The rational a probability float stands for: a simple fraction when one rounds to it, else its decimal.

    Percents over their total give 0.07 (7/100) or 0.3316582914572864 (66/199,
    from 33 / 99.5); of the two candidates, the shorter decimal and the best
    fraction with denominator <= 10^6, the one with the smaller denominator
    that still rounds to `value` is taken.
    """
    candidates = [Fraction(repr(float(value))), Fraction(value).limit_denominator(_SIMPLE_DENOMINATOR)]
    exact = [candidate for candidate in candidates if float(candidate) == value]
    return min(exact, key=lambda candidate: candidate.denominator)


def exact_distribution(prizes: Sequence[float], probs: Sequence[float]) -> dict[Fraction, Fraction]:
    """Prize -> probability, exactly: renormalised, equal prizes merged, zero probabilities dropped."""
    weights = [exact_probability(p) for p in probs]
    total = sum(weights)
    if total <= 0:
        raise ValueError("probabilities sum to zero")
    distribution: dict[Fraction, Fraction] = {}
    for prize, weight in zip(prizes, weights):
        if weight:
            key = exact_prize(prize)
            distribution[key] = distribution.get(key, Fraction(0)) + weight / total
    return distribution


def exact_expected_value(prizes: Sequence[float], probs: Sequence[float]) -> Fraction:
    """sum_i p_i x_i as an exact fraction."""
    return sum((p * x for x, p in exact_distribution(prizes, probs).items()), Fraction(0))


def certainty_equivalent(prizes: Sequence[float], probs: Sequence[float], alpha: float) -> float:
    """Certainty equivalent of a lottery for CARA coefficient `alpha` (0 = linear), as a float.

    Linear: the exact expected value, rounded once. CARA: with w the worst
    prize and d_i = x_i - w >= 0 (exact), CE = w - log1p(sum_i p_i expm1(-alpha d_i)) / alpha,
    which is finite for every finite prize and keeps prizes of $1e-11.
    Probabilities are renormalised so that rounding in a sheet does not shift the CE.
    """
    distribution = exact_distribution(prizes, probs)
    if alpha == 0:
        return float(sum((p * x for x, p in distribution.items()), Fraction(0)))
    worst = min(distribution)
    gaps = {x: min(x - worst, _FLOAT_CEILING) for x in distribution}  # exp(-alpha * 1e300) is 0 anyway
    inner = math.fsum(float(p) * math.expm1(-alpha * float(gaps[x])) for x, p in distribution.items())
    return float(worst) - math.log1p(inner) / alpha


def compare_lotteries(
    first: tuple[Sequence[float], Sequence[float]], second: tuple[Sequence[float], Sequence[float]], alpha: float
) -> int:
    """The exact sign of EU(first) - EU(second) for CARA `alpha` (0 = linear): 1, 0 or -1.

    Each lottery is ``(prizes, probs)``; see the module docstring for the
    arithmetic. 0 (a tie) only for equal expected values (linear) or identical
    merged distributions (CARA).
    """
    return _compare_distributions(exact_distribution(*first), exact_distribution(*second), alpha)


def _compare_distributions(a: dict[Fraction, Fraction], b: dict[Fraction, Fraction], alpha: float) -> int:
    if alpha == 0:
        difference = sum((p * x for x, p in a.items()), Fraction(0)) - sum((p * x for x, p in b.items()), Fraction(0))
        return (difference > 0) - (difference < 0)
    coefficients = {z: b.get(z, 0) - a.get(z, 0) for z in a.keys() | b.keys()}
    coefficients = {z: c for z, c in coefficients.items() if c}
    if not coefficients:
        return 0
    return _sign_of_exponential_sum(coefficients, Fraction(repr(float(alpha))))


def _sign_of_exponential_sum(coefficients: dict[Fraction, Fraction], alpha: Fraction) -> int:
    """sign(sum_z c_z exp(-alpha z)) for nonzero rational c_z and distinct rational z.

    With z0 the smallest z, the sum is exp(-alpha z0) times
    T = sum_z c_z exp(-alpha (z - z0)), whose terms all lie in [-|c_z|, |c_z|].
    T is computed in `decimal` at P digits: each term carries a relative
    rounding error below 10^(2-P) (exponent, argument and product), so
    |error| < (3 + n) 10^(2-P) sum|c_z|; terms whose exponent is below
    -(P + 5) ln 10 are dropped and their bound added. P doubles from 40 until
    |T| exceeds the bound.
    """
    z0 = min(coefficients)
    magnitude = float(sum(abs(c) for c in coefficients.values()))
    digits = 40
    while digits <= MAX_DIGITS:
        with localcontext() as context:
            context.prec = digits
            context.Emin = -(10**9)
            cutoff = (digits + 5) * math.log(10)
            total = Decimal(0)
            dropped = 0.0
            for z, c in coefficients.items():
                exponent = alpha * (z - z0)
                if exponent > cutoff:
                    dropped += abs(float(c)) * 10.0 ** -(digits + 5)
                    continue
                argument = Decimal(exponent.numerator) / Decimal(exponent.denominator)
                total += Decimal(c.numerator) / Decimal(c.denominator) * (-argument).exp()
            bound = Decimal((3 + len(coefficients)) * magnitude) * Decimal(10) ** (2 - digits) + Decimal(dropped)
            if abs(total) > bound:
                return 1 if total > 0 else -1
        digits *= 2
    return 0


def best_labels(options: Sequence[Lottery], alpha: float) -> list[str]:
    """Labels of the options with the highest expected utility for `alpha`, ties exact.

    `options` holds ``(label, prizes, probs)``. The float certainty equivalents
    screen out options far below the best (by more than a million times their
    rounding error); the rest are compared exactly (`compare_lotteries`) and all
    those equal to the best are returned, in their given order.
    """
    candidates = list(options)
    if alpha != 0:
        values = [certainty_equivalent(prizes, probs, alpha) for _, prizes, probs in options]
        slack = 1e-9 * max(_rounding_scale(prizes, probs, alpha) for _, prizes, probs in options)
        top = max(values)
        candidates = [option for option, value in zip(options, values) if value >= top - slack]
    distributions = [exact_distribution(prizes, probs) for _, prizes, probs in candidates]
    best = 0
    for index in range(1, len(candidates)):
        if _compare_distributions(distributions[index], distributions[best], alpha) > 0:
            best = index
    return [
        candidates[index][0]
        for index in range(len(candidates))
        if index == best or _compare_distributions(distributions[index], distributions[best], alpha) == 0
    ]


def _rounding_scale(prizes: Sequence[float], probs: Sequence[float], alpha: float) -> float:
    """Dollars that, times 1e-15, bound the rounding error of the float CE of a lottery.

    The error comes from the prize gaps (relative 1e-16 of the largest prize)
    and from the logarithms (absolute 1e-16 per term, divided by alpha).
    """
    spread = max(abs(x) for x, p in zip(prizes, probs) if p > 0) if any(p > 0 for p in probs) else 0.0
    logs = max((abs(math.log(p)) for p in probs if p > 0), default=0.0)
    return spread + (logs + len(prizes) + 1) / alpha


def parse_amount(text: object) -> float:
    """Parse a money amount or number: ``$2,430``, ``-$92``, ``$6.75e+17``, ``-0.0``.

    Raises ValueError for text that is not a number.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        cleaned = re.sub(r"[\s,$]", "", str(text))
        if cleaned in ("", "-", "+"):
            raise ValueError(f"not a number: {text!r}")
        value = float(cleaned)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def parse_number_list(text: object) -> list[float]:
    """Parse list text such as ``[749.0, -0.0, 0.0]`` or ``['$5', '$10']`` into floats."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        raw = str(text).strip()
        try:
            items = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            items = raw.strip("[]").split(",")
        if not isinstance(items, (list, tuple)):
            items = [items]
    return [parse_amount(item) for item in items]
