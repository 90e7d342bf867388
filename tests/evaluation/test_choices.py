"""Choices with a real (tiny) model: batched log-probs vs a plain per-option computation,
categories, indistinct labels (generation: test_generation.py)."""

import math

import pytest
import torch

from riskdpo.evaluation.choices import (
    categorize,
    indistinct_labels,
    logprob_choices,
    option_completions,
    risk_averse_probability,
)
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.pairs.prompting import PromptFormat, render_prompt
from riskdpo.data.situations import Situation
from riskdpo.models.tiny import build_tiny_model


def eval_situations():
    """Low-stakes plain situations and high-stakes cooperate ones, as an evaluation set."""
    plain = generate_situations(GenerateSpec(situations=10, seed=3, sheet="low"))
    cooperate_spec = GenerateSpec(situations=6, seed=4, stakes="high", framing="cooperate", sheet="coop")
    cooperate = generate_situations(cooperate_spec)
    return plain + cooperate


@pytest.fixture(scope="session")
def eval_model(tmp_path_factory):
    """A tiny phi model built once per session (shared by the eval test modules)."""
    path = tmp_path_factory.getbasetemp() / "eval-tiny-model"
    if not (path / "config.json").exists():
        build_tiny_model(path, [situation.prompt for situation in eval_situations()], seed=0)
    return path


@pytest.fixture(scope="module")
def loaded(eval_model):
    return load_model(str(eval_model)), load_tokenizer(str(eval_model))


def full_sequence_logp(model, tokenizer, prompt, completion):
    """log p(completion + EOS | prompt) from one forward over the whole unpadded sequence."""
    prompt_ids = tokenizer(prompt).input_ids
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + completion_ids])).logits[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    start = len(prompt_ids) - 1
    return sum(float(logprobs[start + t, token]) for t, token in enumerate(completion_ids))


@pytest.mark.parametrize("response", ["label", "as-written"])
def test_logprob_choices_equal_unbatched_per_option_computation(loaded, response):
    model, tokenizer = loaded
    situations = eval_situations()[::2]  # both sheets, 2-5 options
    prompts = [render_prompt(tokenizer, s.prompt, PromptFormat()) for s in situations]
    choices = logprob_choices(model, tokenizer, situations, prompts, response, batch_size=3)
    for situation, prompt, choice in zip(situations, prompts, choices):
        completions = option_completions(situation, response)
        expected = [full_sequence_logp(model, tokenizer, prompt, c) for c in completions]
        assert list(choice.logps.values()) == pytest.approx(expected, abs=1e-4)
        assert choice.label == situation.option_labels[max(range(len(expected)), key=expected.__getitem__)]
        assert choice.category == categorize(situation, choice.label)
        weights = [math.exp(v) for v in expected]
        ra_mass = sum(w for label, w in zip(situation.option_labels, weights) if label in situation.risk_averse)
        assert choice.risk_averse_prob == pytest.approx(ra_mass / sum(weights), abs=1e-4)


def situation(labels, risk_averse, risk_neutral=(), too_risk_averse=()):
    return Situation(
        "1", "s", "pick", list(labels), [f"({label})" for label in labels],
        risk_averse=list(risk_averse), risk_neutral=list(risk_neutral), too_risk_averse=list(too_risk_averse),
    )  # fmt: skip


def test_categories_are_exclusive_in_precedence_order():
    tied = situation("abc", risk_averse=["a"], risk_neutral=["a", "b"], too_risk_averse=["b", "c"])
    assert categorize(tied, "a") == "risk_averse"
    assert categorize(tied, "b") == "risk_neutral"
    assert categorize(tied, "c") == "too_risk_averse"
    assert categorize(situation("abcd", ["a"], ["b"], ["c"]), "d") == "other"
    assert categorize(tied, None) == "invalid"


def test_response_styles_and_risk_averse_probability():
    plain = situation("ab", risk_averse=["b"])
    assert option_completions(plain, "label") == ["a", "b"]
    assert option_completions(plain, "as-written") == ["(a)", "(b)"]
    assert risk_averse_probability(plain, [math.log(0.25), math.log(0.75)]) == pytest.approx(0.75)
    assert risk_averse_probability(plain, [-1000.0, -1000.0 + math.log(3)]) == pytest.approx(0.75)


def word_tokenizer():
    """A real word-level tokenizer that maps every unknown word, so labels c and d, to one id."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "<eos>": 1, "a": 2, "b": 3, "pick": 4}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", unk_token="<unk>", pad_token="<eos>")


def test_labels_that_tokenize_identically_are_detected():
    tokenizer = word_tokenizer()
    assert not indistinct_labels(tokenizer, situation("ab", ["a"]), "label")
    assert indistinct_labels(tokenizer, situation("abcd", ["a"]), "label")
