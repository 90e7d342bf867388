"""Chain-of-thought responses of a pair: the sheet's reasoning, checked, or reasoning written from the lotteries.

`make-pairs --response cot` uses a situation's ``chosen_full``/``rejected_full``
when the sheet gives both. Such reasoning is only kept when its final answer
(read with `riskdpo.data.answers.parse_answer`, the reader that scores
models) names the pair's labelled option: the risk-averse option for the chosen
answer, the rejected agent's for the rejected one. A sheet whose
``rejected_full`` reasons as the linear agent therefore makes no pair under
``--rejected too-risk-averse``; such situations are counted and skipped.

Without them, both answers are written from the situation's lotteries with
`riskdpo.data.reasoning.matched_reasoning`: the same expected values and
certainty equivalents (at alpha = 0.01, and at 0.10 when the rejected agent is
the alpha = 0.10 one), differing only in the deciding rule and the answer, so
that the two are about the same length and line for line alike. The written
reasoning is checked in the same way, which catches a sheet whose labels the
lotteries do not give.
"""

from __future__ import annotations

from collections import Counter

from riskdpo.core.errors import UserError
from riskdpo.data.expected_utility import RISK_AVERSE_ALPHA, TOO_RISK_AVERSE_ALPHA
from riskdpo.data.reasoning import matched_reasoning
from riskdpo.data.situations import Situation
from riskdpo.data.answers import parse_answer

#: The sheet columns of chain-of-thought answers.
COT_COLUMNS = ("chosen_full", "rejected_full")
#: CARA coefficient of each agent (0 = linear).
AGENT_ALPHAS = {"risk_averse": RISK_AVERSE_ALPHA, "risk_neutral": 0.0, "too_risk_averse": TOO_RISK_AVERSE_ALPHA}


class ReasoningMismatch(Exception):
    """A reasoning text whose final answer is not the pair's labelled option; the message is the skip reason."""


def final_answer(text: str, situation: Situation) -> str | None:
    """The canonical label the reasoning ends in, or None when it names none clearly."""
    return parse_answer(text, situation.option_labels, situation.answer_variants)


def _check(text: str, situation: Situation, label: str, what: str) -> str:
    if final_answer(text, situation) != label:
        raise ReasoningMismatch(what)
    return text


def sheet_reasoning(situation: Situation) -> tuple[str, str] | None:
    """The sheet's (chosen_full, rejected_full) when both are non-empty text, else None."""
    texts = [situation.meta.get(column) for column in COT_COLUMNS]
    if all(isinstance(text, str) and text.strip() for text in texts):
        return texts[0], texts[1]
    return None


def written_reasoning(situation: Situation, agent: str) -> tuple[str, str]:
    """Matched reasoning of the risk-averse agent (chosen) and of `agent` (rejected), from the lotteries."""
    if len(situation.options) != len(situation.option_labels) or not situation.options:
        raise UserError(
            f"sheet '{situation.sheet}', situation {situation.situation_id}: --response cot needs a chosen_full column "
            "and a rejected_full column, or the options' prizes and probabilities to write the reasoning from"
        )
    shown = (RISK_AVERSE_ALPHA, AGENT_ALPHAS[agent])
    return (
        matched_reasoning(situation.options, RISK_AVERSE_ALPHA, shown),
        matched_reasoning(situation.options, AGENT_ALPHAS[agent], shown),
    )


def reasoning_pair(situation: Situation, chosen_label: str, rejected_label: str, agent: str) -> tuple[str, str, str]:
    """``(chosen, rejected, source)``: checked reasoning, `source` ``"sheet"`` or ``"written"``.

    Raises `ReasoningMismatch` (its message the reason to count) when a final
    answer is not the labelled option.
    """
    given = sheet_reasoning(situation)
    if given is not None:
        chosen = _check(given[0], situation, chosen_label, "whose chosen_full does not answer the risk-averse option")
        rejected = _check(given[1], situation, rejected_label, f"whose rejected_full does not answer the {agent} option")
        return chosen, rejected, "sheet"
    chosen, rejected = written_reasoning(situation, agent)
    _check(chosen, situation, chosen_label, "whose lotteries do not give its risk-averse label")
    _check(rejected, situation, rejected_label, f"whose lotteries do not give its {agent} label")
    return chosen, rejected, "written"


def length_ratio(pairs: list[dict]) -> tuple[float, float]:
    """Mean chosen length over mean rejected length, in characters and in words."""
    chars = sum(len(pair["chosen"]) for pair in pairs) / max(1, sum(len(pair["rejected"]) for pair in pairs))
    words = sum(len(pair["chosen"].split()) for pair in pairs) / max(1, sum(len(pair["rejected"].split()) for pair in pairs))
    return chars, words


def reasoning_summary(pairs: list[dict]) -> list[str]:
    """Where the pairs' reasoning came from and the chosen/rejected length ratio (nothing without cot pairs)."""
    reasoned = [pair for pair in pairs if "reasoning" in pair]
    if not reasoned:
        return []
    sources = Counter(pair["reasoning"] for pair in reasoned)
    chars, words = length_ratio(reasoned)
    return [
        f"reasoning: {sources['sheet']} from the sheet, {sources['written']} written from the lotteries; "
        f"chosen/rejected length {chars:.2f} (characters), {words:.2f} (words)"
    ]
