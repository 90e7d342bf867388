"""Grading the steps of a worked answer: did the model copy the lotteries, compute each
expected value and certainty equivalent, and pick by its own numbers?

A model trained on `riskdpo.data.reasoning.matched_reasoning` answers writes, per
option,

    Option b: expected value 0.50 * $100 + 0.50 * $0 = $50.00; certainty equivalent CE(0.01) = $37.99.

and then "I choose the option with the highest CE(0.01): option X" and "Answer: X".
A wrong final choice can come from any step, and each calls for a different fix:
reading the prompt (the lottery is miscopied), arithmetic (EV = sum_i p_i x_i or
CE = -ln(sum_i p_i exp(-alpha x_i)) / alpha is wrong), or the rule (the answer is
not the option with the highest CE the model itself wrote). This module reads
those lines back and checks each against the situation's lotteries.

Tolerance: a stated amount is right when |stated - true| <= 0.005 S + 0.01, with S
the situation's stake scale (largest absolute prize): half a percent of the
stakes, which covers the template's cents and its three significant figures at
astronomical stakes. Probabilities are compared at the template's two decimals.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from riskdpo.data.expected_utility import certainty_equivalent, parse_amount
from riskdpo.data.labels import canonical_label
from riskdpo.data.reasoning import expected_value
from riskdpo.data.situations import Situation
from riskdpo.evaluation.alpha import stake_scale

MONEY = r"-?\$[0-9][0-9,]*(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?"
OPTION_LINE = re.compile(
    rf"Option\s+(?P<label>[^\s:]+)\s*:\s*expected value\s+(?P<terms>.*?)\s*=\s*(?P<ev>{MONEY})"
    rf"(?:\s*;\s*certainty equivalent(?:\s+CE\(\s*(?P<alpha>[0-9.e+-]+)\s*\))?\s*=?\s*(?P<ce>{MONEY}))?"
)
TERM = re.compile(rf"(?P<p>[0-9]*\.?[0-9]+)\s*\*\s*(?P<x>{MONEY})")
CHOSEN = re.compile(r"highest\s+(?:CE\([^)]*\)|certainty equivalent)\s*(?:is that of)?\s*:?\s*option\s+(?P<label>[^\s.:]+)", re.I)


@dataclass(frozen=True)
class StatedOption:
    """One option line as the answer wrote it."""

    label: str
    terms: tuple[tuple[float, float], ...]
    expected_value: float
    certainty_equivalent: float | None
    alpha: float | None


def stated_options(answer: str) -> list[StatedOption]:
    """The option lines of a worked answer, in the order written (unreadable lines are skipped)."""
    found = []
    for match in OPTION_LINE.finditer(answer):
        try:
            terms = tuple((float(t["p"]), parse_amount(t["x"])) for t in TERM.finditer(match["terms"]))
            found.append(StatedOption(
                label=canonical_label(match["label"]),
                terms=terms,
                expected_value=parse_amount(match["ev"]),
                certainty_equivalent=parse_amount(match["ce"]) if match["ce"] else None,
                alpha=float(match["alpha"]) if match["alpha"] else None,
            ))
        except ValueError:
            continue
    return found


@dataclass(frozen=True)
class Grade:
    """How one worked answer's steps check out (None where the answer has no such step)."""

    options_written: int      # option lines read back
    options_covered: bool     # every option of the situation has a line, and no other
    copied: float | None      # share of lines whose terms are the option's lottery
    ev_right: float | None    # share of lines with the right expected value
    ce_right: float | None    # share of lines with a CE whose value is right (at the CE's alpha)
    follows_own_numbers: bool | None  # the option it picks has the highest CE it wrote
    picked: str | None        # the option it says has the highest CE


def _close(stated: float, true: float, scale: float) -> bool:
    return abs(stated - true) <= 0.005 * scale + 0.01


def _same_lottery(terms: Sequence[tuple[float, float]], prizes: Sequence[float], probs: Sequence[float], scale: float) -> bool:
    stated = sorted((round(p, 2), x) for p, x in terms)
    true = sorted((round(p, 2), x) for p, x in zip(probs, prizes))
    return len(stated) == len(true) and all(
        math.isclose(sp, tp, abs_tol=0.005) and _close(sx, tx, scale) for (sp, sx), (tp, tx) in zip(stated, true)
    )


def grade_answer(situation: Situation, answer: str, alpha: float = 0.01) -> Grade:
    """Check each step of `answer` against the lotteries of `situation` (module docstring)."""
    lines = stated_options(answer)
    options = {option.label: option for option in situation.options}
    scale = stake_scale(situation)
    known = [line for line in lines if line.label in options]
    copied = ev_right = ce_right = None
    if known:
        copied = sum(_same_lottery(l.terms, options[l.label].prizes, options[l.label].probs, scale) for l in known) / len(known)
        ev_right = sum(_close(l.expected_value, expected_value(options[l.label]), scale) for l in known) / len(known)
        ce_right = sum(
            l.certainty_equivalent is not None
            and _close(l.certainty_equivalent,
                       certainty_equivalent(options[l.label].prizes, options[l.label].probs, l.alpha or alpha), scale)
            for l in known
        ) / len(known)
    match = CHOSEN.search(answer)
    picked = canonical_label(match["label"]) if match else None
    stated_ce = {l.label: l.certainty_equivalent for l in lines if l.certainty_equivalent is not None}
    follows = None
    if picked is not None and stated_ce:
        follows = picked in stated_ce and stated_ce[picked] >= max(stated_ce.values())
    return Grade(
        options_written=len(lines),
        options_covered={l.label for l in lines} == set(situation.option_labels) and len(lines) == len(situation.option_labels),
        copied=copied,
        ev_right=ev_right,
        ce_right=ce_right,
        follows_own_numbers=follows,
        picked=picked,
    )


def summarize_grades(grades: Sequence[Grade]) -> dict[str, float | int]:
    """Per step, the mean over the answers that have it, and how many have it."""
    summary: dict[str, float | int] = {"answers": len(grades)}
    for name in ("options_covered", "copied", "ev_right", "ce_right", "follows_own_numbers"):
        values = [float(getattr(grade, name)) for grade in grades if getattr(grade, name) is not None]
        summary[name] = sum(values) / len(values) if values else math.nan
        summary[f"{name}_n"] = len(values)
    return summary
