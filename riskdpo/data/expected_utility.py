"""Expected utility of lotteries, computed in log space so that nothing overflows.

Agents (`docs/data-formats.md`): risk-averse CARA with alpha = 0.01, "too risk-averse" CARA with
alpha = 0.10, and risk-neutral (linear). CARA is wealth-independent, so utility
is taken over prizes x_i (changes in wealth) with probabilities p_i:

    EU_alpha = sum_i p_i (1 - exp(-alpha x_i)) = 1 - sum_i p_i exp(-alpha x_i)

With prizes up to +-1e94, exp(-alpha x) overflows a float. Maximising EU is the
same as minimising  L = logsumexp_i(log p_i - alpha x_i), so options are ranked
by the certainty equivalent

    CE_alpha = -L / alpha        (in dollars; CE_0 = sum_i p_i x_i)

which is finite for every finite prize. Zero-probability outcomes drop out.
"""

from __future__ import annotations

import ast
import math
import re
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

#: Relative tolerance under which two options count as tied.
TIE_TOLERANCE = 1e-9


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))) without overflow; -inf for an empty sequence."""
    if not values:
        return -math.inf
    top = max(values)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def certainty_equivalent(prizes: Sequence[float], probs: Sequence[float], alpha: float) -> float:
    """Certainty equivalent of a lottery for CARA coefficient `alpha` (0 = linear).

    CE = -logsumexp(log p_i - alpha x_i) / alpha. Probabilities are fractions;
    they are renormalised so that rounding in a sheet does not shift the CE.
    """
    total = sum(probs)
    if total <= 0:
        raise ValueError("probabilities sum to zero")
    terms = [(p / total, x) for p, x in zip(probs, prizes) if p > 0]
    if alpha == 0:
        return sum(p * x for p, x in terms)
    return -logsumexp([math.log(p) - alpha * x for p, x in terms]) / alpha


def best_labels(options: Sequence[tuple[str, Sequence[float], Sequence[float]]], alpha: float) -> list[str]:
    """Labels of the options with the highest expected utility for `alpha`.

    `options` holds ``(label, prizes, probs)``. Options whose certainty
    equivalents lie within a relative `TIE_TOLERANCE` of the best are all
    returned (ties), in their given order.
    """
    values = [certainty_equivalent(prizes, probs, alpha) for _, prizes, probs in options]
    best = max(values)
    slack = TIE_TOLERANCE * max(1.0, abs(best))
    return [label for (label, _, _), value in zip(options, values) if value >= best - slack]


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
