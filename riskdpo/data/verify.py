"""Recomputing each agent's best options from the lotteries, to check a sheet's labels.

For every situation whose options carry prizes and probabilities, the three
agents of `docs/data-formats.md` are re-run with `riskdpo.data.expected_utility.best_labels`,
which decides exactly (fractions for the linear agent, cancelled shared outcomes
and high-precision decimals for CARA; no overflow at +-1e94, ties only when
exact) -- the same function `generate` labels its situations with:

    risk_averse      CARA alpha = 0.01   argmax_o  CE_0.01(o)
    risk_neutral     linear              argmax_o  sum_i p_i x_i
    too_risk_averse  CARA alpha = 0.10   argmax_o  CE_0.10(o)

A label set the sheet gives that differs from the recomputed one is a
*mismatch*: a warning for the user to look at, never a silent fix, because the
sheet may round prizes for display while its labels came from exact values.
A label set the sheet leaves empty is filled from the recomputation.
Everything here is a pure function of the situation.
"""

from __future__ import annotations

from dataclasses import dataclass

from riskdpo.data.situations import Situation
from riskdpo.data.expected_utility import RISK_AVERSE_ALPHA, TOO_RISK_AVERSE_ALPHA, best_labels

#: Label-set field of a situation -> the CARA coefficient of its agent (0 = linear).
AGENT_ALPHAS: dict[str, float] = {
    "risk_averse": RISK_AVERSE_ALPHA,
    "risk_neutral": 0.0,
    "too_risk_averse": TOO_RISK_AVERSE_ALPHA,
}


@dataclass(frozen=True)
class LabelMismatch:
    """A label set of the sheet that differs from the recomputed best options."""

    situation_id: str
    field: str
    sheet_labels: tuple[str, ...]
    computed_labels: tuple[str, ...]

    def describe(self) -> str:
        """One clause for a summary line, e.g. "risk_averse is ['b'] in the sheet but ['a'] recomputed (alpha 0.01)"."""
        alpha = AGENT_ALPHAS[self.field]
        agent = "linear" if alpha == 0 else f"alpha {alpha:g}"
        return f"{self.field} is {list(self.sheet_labels)} in the sheet but {list(self.computed_labels)} recomputed ({agent})"


def has_lotteries(situation: Situation) -> bool:
    """True when every option carries prizes and probabilities (so agents can be re-run)."""
    return bool(situation.options) and all(option.prizes and option.probs for option in situation.options)


def recompute_label_sets(situation: Situation) -> dict[str, list[str]]:
    """Best option labels of each agent, from the options' lotteries; {} without lotteries."""
    if not has_lotteries(situation):
        return {}
    lotteries = [(option.label, option.prizes, option.probs) for option in situation.options]
    return {field: best_labels(lotteries, alpha) for field, alpha in AGENT_ALPHAS.items()}


def find_mismatches(situation: Situation, computed: dict[str, list[str]]) -> list[LabelMismatch]:
    """The non-empty label sets of `situation` that differ (as sets) from `computed`."""
    mismatches = []
    for field, labels in computed.items():
        given = getattr(situation, field)
        if given and set(given) != set(labels):
            mismatches.append(LabelMismatch(situation.situation_id, field, tuple(given), tuple(labels)))
    return mismatches


def missing_label_sets(situation: Situation, computed: dict[str, list[str]]) -> dict[str, list[str]]:
    """The recomputed label sets for the fields the sheet left empty."""
    return {field: labels for field, labels in computed.items() if not getattr(situation, field)}
