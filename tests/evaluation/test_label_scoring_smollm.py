"""Log-prob choices among labels of unequal token count, on the bundled SmolLM2 (a digit-splitting tokenizer).

36 generated five-option situations are relabelled 8-12, the labels shuffled over the option lines (so
no label keeps a line). 8 and 9 are one token, 10-12 two. The complete-label rule must choose short labels
as often as scoring the whole label + EOS does (lm-evaluation-harness's rule, which also costs every label
all of its tokens); scoring each label on its first two tokens, riskdpo's earlier rule, fails the same check.
"""

import dataclasses
import random

import pytest
import torch

from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.evaluation.choices import logprob_choices, option_completions
from riskdpo.models.loading import load_model, load_tokenizer, resolve_model
from riskdpo.models.logps import completion_logps
from riskdpo.pairs.prompting import PromptFormat, render_prompt

LABELS = ["8", "9", "10", "11", "12"]
SITUATIONS = 36
#: Short-label choices of two rules that favour neither may differ by this many of the 36 (sampling of
#: situations aside, the rules differ only in how the model ends an answer after the label).
TOLERANCE = 5


def relabelled(situation, labels):
    """The situation with option line k labelled labels[k] (prompt, label sets and options alike)."""
    mapping = dict(zip(situation.option_labels, labels))
    lines = []
    for line in situation.prompt.split("\n"):
        head = line.split(" ", 1)[0]
        lines.append(mapping[head] + line[len(head) :] if head in mapping else line)
    moved = lambda chosen: [mapping[label] for label in chosen]  # noqa: E731
    return dataclasses.replace(
        situation, prompt="\n".join(lines), option_labels=list(labels), labels_as_written=list(labels),
        risk_averse=moved(situation.risk_averse), risk_neutral=moved(situation.risk_neutral),
        too_risk_averse=moved(situation.too_risk_averse), answer_variants={},
        options=[dataclasses.replace(option, label=mapping[option.label]) for option in situation.options],
    )  # fmt: skip


def eight_to_twelve():
    generated = generate_situations(GenerateSpec(situations=6 * SITUATIONS, seed=3, sheet="low"))
    five = [s for s in generated if len(s.option_labels) == 5][:SITUATIONS]
    assert len(five) == SITUATIONS
    rng = random.Random(0)
    return [relabelled(s, rng.sample(LABELS, len(LABELS))) for s in five]


@pytest.mark.slow
def test_smollm2_does_not_favour_short_or_long_labels():
    path = resolve_model("smollm2-135m")
    tokenizer, model = load_tokenizer(path), load_model(path)
    assert [len(tokenizer(label, add_special_tokens=False).input_ids) for label in LABELS] == [1, 1, 2, 2, 2]
    situations = eight_to_twelve()
    prompts = [render_prompt(tokenizer, s.prompt, PromptFormat()) for s in situations]
    complete = [choice.label for choice in logprob_choices(model, tokenizer, situations, prompts, "label")]
    completions = [option_completions(s, "label") for s in situations]
    with_eos = completion_logps(model, tokenizer, prompts, completions, share_prefix=True)
    everything = torch.ones(len(tokenizer), dtype=torch.bool)  # an ending set of every token: log p(label tokens)
    tokens_only = completion_logps(model, tokenizer, prompts, completions, share_prefix=True, end_set=everything)

    def best(situation, scores):
        return situation.option_labels[max(range(len(scores)), key=scores.__getitem__)]

    full = [best(s, scores) for s, scores in zip(situations, with_eos)]
    # first two tokens: 8 + EOS for one-token labels, 1 0 for two-token labels
    first_two = [
        best(s, [whole if len(label) == 1 else cut for label, whole, cut in zip(s.option_labels, whole_row, cut_row)])
        for s, whole_row, cut_row in zip(situations, with_eos, tokens_only)
    ]

    def short(labels):
        return sum(label in ("8", "9") for label in labels)

    assert abs(short(complete) - short(full)) <= TOLERANCE, (short(complete), short(full))
    assert abs(short(first_two) - short(full)) > TOLERANCE, (short(first_two), short(full))  # the check can fail
    assert 0 < short(complete) < SITUATIONS
