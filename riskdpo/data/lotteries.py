"""Lotteries: prizes with probabilities, from sheet columns or from a prompt's option line.

Sheets give probabilities as integer percents that may not sum to exactly 100
after rounding; prompts write each outcome in one of three ways (`docs/data-formats.md`):
``82% probability of $749``, ``probability 0.82 of $749``, or a verbal phrase
from `riskdpo.data.expected_utility.VERBAL_PROBABILITIES` (``Likely to give $749`` = 80%).
Both become ``(prizes, probabilities as fractions summing to 1)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from riskdpo.data.expected_utility import VERBAL_PROBABILITIES, parse_amount

#: How far percent probabilities may sum away from 100 (rounding in the sheet).
PERCENT_TOLERANCE = 1.0


def _amount(name: str) -> str:
    """Pattern of a dollar amount (``$2,430``, ``-$92``, ``$6.75e+17``) captured as group `name`."""
    return rf"(?P<{name}>-?\s?\$\s?-?[\d,]*\.?\d+(?:[eE][+-]?\d+)?)"


_VERBAL = "|".join(
    re.escape(phrase).replace("'", "['’]") for phrase in sorted(VERBAL_PROBABILITIES, key=len, reverse=True)
)
#: One outcome of a lottery as a prompt writes it, in any of the three ways of `docs/data-formats.md`.
_OUTCOME = re.compile(
    rf"(?P<percent>\d+(?:\.\d+)?)\s*%\s*(?:probability|chance)\s+(?:of|to\s+\w+)\s+{_amount('percent_amount')}"
    rf"|probability\s+(?:of\s+)?(?P<fraction>\d*\.\d+|[01])\s+(?:of|to\s+\w+)\s+{_amount('fraction_amount')}"
    rf"|(?P<verbal>{_VERBAL})\s+{_amount('verbal_amount')}",
    re.IGNORECASE,
)
_VERBAL_BY_LOWER = {phrase.lower(): percent for phrase, percent in VERBAL_PROBABILITIES.items()}


def lottery_from_percents(prizes: Sequence[float], percents: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Prizes and percent probabilities -> (prizes, fractions summing to 1).

    Percents must sum to 100 within `PERCENT_TOLERANCE`; they are divided by
    their own total so that rounding (e.g. 33 + 33 + 33) still gives fractions
    that sum to 1. Raises ValueError naming what is wrong.
    """
    if len(prizes) != len(percents):
        raise ValueError(f"{len(prizes)} prizes but {len(percents)} probabilities")
    if not prizes:
        raise ValueError("no outcomes")
    if any(percent < 0 for percent in percents):
        raise ValueError(f"a negative probability in {list(percents)}")
    total = sum(percents)
    if abs(total - 100) > PERCENT_TOLERANCE:
        raise ValueError(
            f"probabilities {[round(p, 6) for p in percents]} sum to {total:g}%, not 100% "
            f"(±{PERCENT_TOLERANCE:g} allowed for rounding)"
        )
    return tuple(prizes), tuple(percent / total for percent in percents)


@dataclass(frozen=True)
class ShownOutcome:
    """One outcome as an option line writes it: the amount, and the probability in
    percent where it is written as a number (None for a verbal phrase), each with its text."""

    amount: float
    amount_text: str
    percent: float | None
    percent_text: str | None
    verbal_percent: float


def prompt_outcomes(text: str) -> list[ShownOutcome]:
    """The outcomes an option line writes, in order: percent (``82% probability of
    $749``), fraction (``probability 0.82 of $749``) and verbal (``Likely to give
    $749`` = 80%) forms."""
    outcomes = []
    for match in _OUTCOME.finditer(text):
        if match.group("percent") is not None:
            written = match.group("percent")
            outcomes.append(ShownOutcome(parse_amount(match.group("percent_amount")), match.group("percent_amount"),
                                         float(written), f"{written}%", float(written)))
        elif match.group("fraction") is not None:
            written = match.group("fraction")
            outcomes.append(ShownOutcome(parse_amount(match.group("fraction_amount")), match.group("fraction_amount"),
                                         100 * float(written), written, 100 * float(written)))
        else:
            percent = _VERBAL_BY_LOWER[match.group("verbal").lower().replace("’", "'")]
            outcomes.append(ShownOutcome(parse_amount(match.group("verbal_amount")), match.group("verbal_amount"),
                                         None, None, percent))
    return outcomes


def prompt_lottery(text: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The lottery an option line offers, e.g. ``59% probability of -$73,700, 41% probability of $270``.

    Reads the outcomes of `prompt_outcomes` (a verbal phrase counts as its
    percent). None when the line names no outcome or its probabilities do not sum to 100.
    """
    outcomes = prompt_outcomes(text)
    try:
        return lottery_from_percents([o.amount for o in outcomes], [o.verbal_percent for o in outcomes])
    except ValueError:
        return None
