"""Which option a model picks in each situation, by log-probability or by generation.

logprob (the default): the completions are the option labels as the response
style writes them (``label``: the canonical label ``b``; ``as-written``: the
prompt's form ``(b)``), each followed by EOS exactly as in training
(`riskdpo.models.logps` tokenisation contract). Every option is scored on the
same number of tokens, so that no label pays for its length: with T_j the
token count of completion j (label + EOS) and T = min_j T_j,

    l_j = sum_{t < T} log pi(token_jt | prompt, tokens_j<t)

and the model's choice is argmax_j l_j. With tokenizers that split digits
(Llama 3, Qwen) labels 10-12 take one token more than 1-9 and, summed over all
their tokens, would pay an extra factor of about 1/vocabulary and never be
chosen by an indifferent model; truncated to T tokens they compete on equal
terms, and they still differ from each other within T tokens (``1 0`` vs
``1 1``). With equal counts, the usual case, l_j is the whole completion's
log-probability. Should two truncated completions coincide, the whole
completions are scored instead. Each choice records the token counts
(``label_tokens``) and T (``scored_tokens``); the report counts the situations
whose labels differ in token count. The risk-averse probability mass is the
softmax of the l_j summed over the risk-averse labels:

    P(risk-averse) = sum_{j in RA} exp(l_j) / sum_k exp(l_k)

All options of a situation share one pass over the prompt, the token prefix all
prompts share (the chat template's opening) is run once for all of them, and
situations are batched by length (`riskdpo.models.logps.completion_logps`). When two options'
completions tokenize to the same ids the comparison is meaningless: such a
situation is skipped and counted (`indistinct_labels`), never scored.

generate: answers are decoded by `riskdpo.evaluation.generation` and read by
`riskdpo.data.answers.read_answer`, which also says which part of a
``<think>`` answer it read and why an invalid answer names no choice.

A choice falls in exactly one category, taken in this order:
risk_averse (a best option for CARA alpha = 0.01), risk_neutral (linear best),
too_risk_averse (alpha = 0.10 best, necessarily not a risk-averse best since
that is taken first), other, and invalid (no readable choice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from riskdpo.models.logps import completion_logps, tokenize_group
from riskdpo.data.situations import Situation

#: How a completion writes a label: canonical ("b") or as the prompt writes it ("(b)").
RESPONSE_STYLES = ("label", "as-written")
#: Exclusive choice categories, in precedence order.
CATEGORIES = ("risk_averse", "risk_neutral", "too_risk_averse", "other", "invalid")


@dataclass
class Choice:
    """A model's choice in one situation and the evidence for it."""

    label: str | None
    category: str
    logps: dict[str, float] | None = None
    risk_averse_prob: float | None = None
    answer: str | None = None
    #: generate mode: the part of the answer the label was read from ("visible" or "reasoning").
    answer_source: str | None = None
    #: Why a choice is invalid (`riskdpo.data.answers.INVALID_REASONS`, or "nan_logprobs").
    invalid_reason: str | None = None
    #: generate mode: characters of <think> reasoning in the answer.
    reasoning_chars: int | None = None
    #: logprob mode: tokens of each option's completion (label + EOS).
    label_tokens: dict[str, int] | None = None
    #: logprob mode: how many leading tokens of each completion were scored.
    scored_tokens: int | None = None


def categorize(situation: Situation, label: str | None) -> str:
    """The category of choosing `label` in `situation` (precedence as in the module docstring)."""
    if label is None:
        return "invalid"
    for category in ("risk_averse", "risk_neutral", "too_risk_averse"):
        if label in getattr(situation, category):
            return category
    return "other"


def option_completions(situation: Situation, response: str) -> list[str]:
    """The completion text of each option, in prompt order, for a response style."""
    if response not in RESPONSE_STYLES:
        raise ValueError(f"response style {response!r}: expected one of {RESPONSE_STYLES}")
    if response == "label":
        return list(situation.option_labels)
    return list(situation.labels_as_written)


def indistinct_labels(tokenizer: Any, situation: Situation, response: str) -> bool:
    """True when two options' completions (label ids + EOS) are the same token ids."""
    _, completion_ids = tokenize_group(tokenizer, "", option_completions(situation, response))
    return len({tuple(ids) for ids in completion_ids}) < len(completion_ids)


def risk_averse_probability(situation: Situation, logps: Sequence[float]) -> float:
    """Softmax mass of the options' completion log-probs on the risk-averse labels."""
    top = max(logps)
    weights = [math.exp(value - top) for value in logps]
    chosen = sum(w for label, w in zip(situation.option_labels, weights) if label in situation.risk_averse)
    return chosen / sum(weights)


def logprob_choices(
    model: Any,
    tokenizer: Any,
    situations: Sequence[Situation],
    prompts: Sequence[str],
    response: str,
    *,
    batch_size: int = 8,
    progress: bool = False,
) -> list[Choice]:
    """Each situation's choice = the option whose completion is most probable given the prompt.

    `prompts` are the situations' prompts already rendered for the model.
    """
    completions = [option_completions(situation, response) for situation in situations]
    token_ids = [tokenize_group(tokenizer, "", texts)[1] for texts in completions]
    limits = [scored_token_count(ids) for ids in token_ids]
    scores = completion_logps(
        model, tokenizer, list(prompts), completions, batch_size=batch_size, progress=progress, token_limits=limits,
        share_prefix=True,
    )
    choices = []
    for situation, logps, ids, limit in zip(situations, scores, token_ids, limits):
        evidence = {
            "logps": dict(zip(situation.option_labels, logps)),
            "label_tokens": dict(zip(situation.option_labels, map(len, ids))),
            "scored_tokens": limit if limit is not None else max(map(len, ids)),
        }
        if any(math.isnan(value) for value in logps):  # a broken model: no choice can be read
            choices.append(Choice(None, "invalid", invalid_reason="nan_logprobs", **evidence))
            continue
        best = max(range(len(logps)), key=lambda j: logps[j])
        label = situation.option_labels[best]
        choices.append(
            Choice(
                label=label,
                category=categorize(situation, label),
                risk_averse_prob=risk_averse_probability(situation, logps),
                **evidence,
            )
        )
    return choices


def scored_token_count(completion_ids: Sequence[Sequence[int]]) -> int | None:
    """T = the fewest tokens of any completion, when the completions cut to T tokens stay distinct; else None.

    None (score every token) only when two completions share their first T
    tokens, which labels of 1-12 or a-l with EOS do not.
    """
    shortest = min(len(ids) for ids in completion_ids)
    cut = {tuple(ids[:shortest]) for ids in completion_ids}
    return shortest if len(cut) == len(completion_ids) else None
