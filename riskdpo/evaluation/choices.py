"""Which option a model picks in each situation, by log-probability or by generation.

logprob (the default): the completions are the option labels as the response
style writes them (``label``: the canonical label ``b``; ``as-written``: the
prompt's form ``(b)``). Option j's score is the log-probability that the answer
is that label *complete*: its tokens, then a token that cannot continue it,

    l_j = log pi(label_j | prompt) + log sum_{v in E} pi(v | prompt, label_j)

where the ending set E (`label_end_set`) holds every token whose text does not
glue onto a label: EOS and the chat template's end of turn, whitespace, ``)``,
``.``, ``:`` and every other token that starts with neither a letter, a digit,
``_``, ``%``, decoding debris (U+FFFD), an apostrophe before a letter (``'s``) nor
``.``/``,`` before a digit (``.5``), as the answer reader sees a label stand
alone (`riskdpo.data.answers`). The model's choice is argmax_j l_j.

Why: the events "the answer opens with label j, complete" are disjoint for
distinct labels, so exp(l_j) is the probability the model answers j (as a
reader would read an answer that opens with it) whatever the tokenizer: with
tokenizers that split digits (Llama 3, Qwen, SmolLM2), ``10`` is ``1 0`` and
pays pi(1) pi(0 | 1), which is the model's probability of writing 10, while
``8`` pays pi(8) pi(E | 8), and ``1`` pays for not going on to ``10``-``12``. Nothing
is cut: scoring every label on the same number of leading tokens (riskdpo
before 2026-12) made 8 and 9 pay pi(EOS | 8) while 10-12 paid only their second
digit; on 36 situations labelled 8-12 it let SmolLM2 choose 8 or 9 in 3, where
this rule chose them in 22 and label + EOS in 23
(tests/evaluation/test_label_scoring_smollm.py). Nor is EOS
required: a model that answers ``8.`` or ``8)`` (SmolLM2 follows a one-digit
label with EOS with probability 0.06 on average in those 36 situations) would pay for that habit in l_j = log pi(label + EOS), which
lm-evaluation-harness scores; the ending set counts ``8.`` and ``8<eos>``
alike. With equal token counts, the two rules differ only by that habit.
Each choice records the token counts of the labels (``label_tokens``); the
report counts the situations whose labels differ in token count. The
risk-averse probability mass is the softmax of the l_j summed over the
risk-averse labels:

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

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

from riskdpo.models.logps import completion_logps, tokenize_group
from riskdpo.data.situations import Situation

#: How a completion writes a label: canonical ("b") or as the prompt writes it ("(b)").
RESPONSE_STYLES = ("label", "as-written")
#: The log-prob rule's name (module docstring), stored with a resumable run's settings.
LABEL_SCORE = "label followed by a token that ends it"
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
    #: logprob mode: tokens of each option's label (without what ends it).
    label_tokens: dict[str, int] | None = None


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
    scores = completion_logps(
        model, tokenizer, list(prompts), completions, batch_size=batch_size, progress=progress, share_prefix=True,
        end_set=label_end_set(tokenizer),
    )
    choices = []
    for situation, logps, ids in zip(situations, scores, token_ids):
        evidence = {
            "logps": dict(zip(situation.option_labels, logps)),
            "label_tokens": {label: len(label_ids) - 1 for label, label_ids in zip(situation.option_labels, ids)},
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


def _glues(text: str) -> bool:
    """Whether text that follows a label continues it (the label would not stand alone)."""
    if not text:
        return False
    first, second = text[0], text[1:2]
    return (
        first.isalnum() or first in "_%\ufffd"
        or (first in "'\u2019" and second.isalpha())
        or (first in ".," and second.isdigit())
    )  # fmt: skip


@functools.lru_cache(maxsize=8)
def label_end_set(tokenizer: Any) -> Any:
    """[V] bool over the tokenizer's ids: the tokens that end a label (module docstring), EOS always among them.

    A token's text is read as it follows a letter (``a`` + id, minus ``a``), so
    that SentencePiece's leading-space marker counts as the space it is.
    """
    import torch

    anchor = tokenizer("a", add_special_tokens=False).input_ids
    before = tokenizer.decode(anchor, clean_up_tokenization_spaces=False)
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[*anchor, token] for token in range(size)], clean_up_tokenization_spaces=False)
    ends = torch.tensor([not _glues(text[len(before):] if text.startswith(before) else text) for text in texts])
    if tokenizer.eos_token_id is not None:
        ends[tokenizer.eos_token_id] = True
    return ends
