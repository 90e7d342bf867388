"""Do an option's lottery cells say what its prompt line shows?

A layout-1 row gives each option's lottery twice: as numbers
(`prizes_display`, `probs_percent`) and as text in the prompt's option line
(``probability 0.70 of $21, probability 0.30 of $10``). The labels are checked
against the numbers (`riskdpo.data.verify`) and the model reads the text, so the
two must be the same lottery: a prizes cell of -1e308 behind a line that shows
$21 would otherwise train and grade against a lottery no prompt offers.

Outcome i of the cells agrees with outcome i of the line when

    |prize_cell - amount_shown|     <= u_amount / 2
    |percent_cell - percent_shown|  <= u_percent / 2    (numbers only; verbal phrases are not compared)

where u is one unit in the last place the sheet rounds to:

* ``rounding_mode`` ``Nsf`` (``3sf``, ``5sf``): the N-th significant figure of the
  amount shown, u = 10^(floor(log10 |shown|) - N + 1); ``Ndp``: u = 10^-N;
* otherwise (no column, another mode): the last digit the text writes
  (``$6,670`` -> 1, ``$0.25`` -> 0.01, ``$2.24e+92`` -> 1e90): a sheet that states
  no rounding shows its cells as they are.

Percents are compared at the precision written (``70%`` -> 1, ``0.70`` -> 1
percentage point, ``12.5%`` -> 0.1). A cell list with another number of outcomes
than the line disagrees too. Everything here is a pure function of the texts and numbers.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Sequence

from riskdpo.data.lotteries import ShownOutcome, prompt_outcomes

#: Relative slack on the bounds: float cells such as 0.1 + 0.2 sit a hair off their decimal.
_SLACK = 1e-9


def rounding_unit(shown: float, text: str, rounding_mode: str | None) -> float:
    """u of the module docstring: one unit in the last place `shown` (written as `text`) is rounded to."""
    mode = (rounding_mode or "").strip().lower()
    figures = re.fullmatch(r"(\d+)\s*sf", mode)
    if figures and shown != 0:
        return 10.0 ** (math.floor(math.log10(abs(shown))) - int(figures.group(1)) + 1)
    places = re.fullmatch(r"(\d+)\s*dp", mode)
    if places:
        return 10.0 ** -int(places.group(1))
    return written_unit(text)


def written_unit(text: str) -> float:
    """One unit in the last digit `text` writes: ``6,670`` -> 1, ``0.25`` -> 0.01, ``2.24e+92`` -> 1e90."""
    number = re.sub(r"[^\d.eE+-]", "", text).lstrip("+-")
    exponent = Decimal(number.lower().split("e")[0]).as_tuple().exponent
    shift = int(number.lower().split("e")[1]) if "e" in number.lower() else 0
    return 10.0 ** (exponent + shift)


def _within(cell: float, shown: float, unit: float) -> bool:
    return abs(cell - shown) <= unit / 2 + _SLACK * max(abs(cell), abs(shown), unit)


def lottery_disagreements(line: str, prizes: Sequence[float], percents: Sequence[float],
                          rounding_mode: str | None = None) -> list[str]:
    """How the cells' lottery (`prizes`, `percents` as written in the sheet) differs from
    what option line `line` shows; [] when they agree or the line writes no outcome."""
    shown = prompt_outcomes(line)
    if not shown:
        return []
    if len(shown) != len(prizes):
        return [f"the prompt line shows {len(shown)} outcomes but prizes_display has {len(prizes)}"]
    problems = []
    for number, (outcome, prize, percent) in enumerate(zip(shown, prizes, percents), start=1):
        problems += _outcome_disagreements(number, outcome, prize, percent, rounding_mode)
    return problems


def _outcome_disagreements(number: int, outcome: ShownOutcome, prize: float, percent: float,
                           rounding_mode: str | None) -> list[str]:
    problems = []
    unit = rounding_unit(outcome.amount, outcome.amount_text, rounding_mode)
    if not _within(prize, outcome.amount, unit):
        problems.append(f"outcome {number} shows {outcome.amount_text.strip()} but prizes_display holds {prize:g}")
    if outcome.percent is not None:
        text = outcome.percent_text or ""
        unit = written_unit(text.rstrip("%")) * (1 if text.endswith("%") else 100)
        if not _within(percent, outcome.percent, unit):
            problems.append(f"outcome {number} shows probability {text} but probs_percent holds {percent:g}")
    return problems
