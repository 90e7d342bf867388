"""Choices with a real (tiny) model: batched log-probs (with the prompts' common prefix run once)
vs a plain per-option computation, categories, indistinct labels (generation: test_generation.py)."""

import math
from types import SimpleNamespace

import pytest
import torch

from riskdpo.evaluation.choices import (
    categorize,
    indistinct_labels,
    logprob_choices,
    option_completions,
    label_end_set,
    risk_averse_probability,
)
from riskdpo.evaluation.generation import answer_record
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import completion_logps, tokenize_group
from riskdpo.models.shared_prefix import MIN_SHARED_PREFIX, common_prefix_length
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
    """log p(completion | prompt) + log p(a token that ends it | prompt, completion), one unpadded forward."""
    prompt_ids = tokenizer(prompt).input_ids
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + completion_ids])).logits[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    start = len(prompt_ids) - 1
    ends = logprobs[start + len(completion_ids)][label_end_set(tokenizer)]
    return sum(float(logprobs[start + t, token]) for t, token in enumerate(completion_ids)) + float(ends.logsumexp(0))


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


def test_logprob_choices_share_the_prompts_common_prefix_and_choose_as_without(loaded):
    """A system turn gives every prompt the same opening tokens: they are run once (enough of them
    to share), and the log-probs and choices are those of one plain pass per option."""
    model, tokenizer = loaded
    situations = eval_situations()[1::2]
    fmt = PromptFormat(system="You are choosing between lotteries. Think of what you can afford to lose.")
    prompts = [render_prompt(tokenizer, s.prompt, fmt) for s in situations]
    prompt_ids = [tokenize_group(tokenizer, p, [])[0] for p in prompts]
    assert common_prefix_length(prompt_ids) >= MIN_SHARED_PREFIX
    choices = logprob_choices(model, tokenizer, situations, prompts, "as-written", batch_size=3)
    completions = [option_completions(s, "as-written") for s in situations]
    unshared = completion_logps(model, tokenizer, prompts, completions, batch_size=3, end_set=label_end_set(tokenizer))
    for situation, prompt, texts, choice, plain in zip(situations, prompts, completions, choices, unshared):
        expected = [full_sequence_logp(model, tokenizer, prompt, c) for c in texts]
        assert list(choice.logps.values()) == pytest.approx(expected, abs=1e-4)
        assert list(choice.logps.values()) == pytest.approx(plain, abs=1e-5)
        assert choice.label == situation.option_labels[max(range(len(plain)), key=plain.__getitem__)]


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


def test_thinking_answers_say_which_part_was_read():
    plain = situation("abc", risk_averse=["b"], risk_neutral=["a"])
    answers = ["<think>a is riskier</think> b", "<think>I pick a.</think>", "<think>a or b, hmm", "not a"]
    records = [answer_record(plain, answer, 10, True) for answer in answers]
    assert [(r["label"], r["answer_source"], r["invalid_reason"]) for r in records] == [
        ("b", "visible", None),
        ("a", "reasoning", None),
        (None, "reasoning", "truncated"),
        (None, "visible", "negated"),
    ]
    assert [r["reasoning_chars"] for r in records] == [len("a is riskier"), len("I pick a."), len("a or b, hmm"), 0]


# ---- label length in log-prob mode (issue 13, part 4) -------------------------------------------------------------

TWELVE = [str(n) for n in range(1, 13)]


def digit_splitting(tokenizer):
    """The tiny model's BPE tokenizer made to split digits, as Llama 3 and Qwen tokenizers do."""
    from tokenizers import pre_tokenizers

    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    return tokenizer


@pytest.fixture(scope="module")
def digit_model(eval_model):
    return load_model(str(eval_model)), digit_splitting(load_tokenizer(str(eval_model)))


def twelve_options(risk_averse=("11",)):
    return situation(TWELVE, risk_averse=list(risk_averse))


def test_the_tokenizer_splits_digits(digit_model):
    _, tokenizer = digit_model
    assert len(tokenizer("10", add_special_tokens=False).input_ids) == 2
    assert len(tokenizer("7", add_special_tokens=False).input_ids) == 1


class AnswerTable(torch.nn.Module):
    """A language model written out by hand: the next token's probabilities are a table of the answer so
    far (the text after the prompt's last ``Answer:``), so every answer's probability is known exactly.
    Tokens the table does not list get probability 0 (logit -1e4, which underflows)."""

    def __init__(self, tokenizer, table):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # where the log-probs are computed
        self.config = SimpleNamespace(_attn_implementation="table")  # no packed mask: one sequence per option
        self.tokenizer = tokenizer
        self.rows = {answer: self._row(nexts) for answer, nexts in table.items()}

    def _row(self, nexts):
        row = torch.full((len(self.tokenizer),), -1e4)
        for token, probability in nexts.items():
            ids = [self.tokenizer.eos_token_id] if token == "<eos>" else self.tokenizer(token, add_special_tokens=False).input_ids
            (token_id,) = ids
            row[token_id] = math.log(probability)
        return row

    def forward(self, input_ids, logits_to_keep=0, **_):
        logits = torch.full((*input_ids.shape, len(self.tokenizer)), -1e4)
        for b, ids in enumerate(input_ids.tolist()):
            for t in range(len(ids)):
                text = self.tokenizer.decode([i for i in ids[: t + 1] if i != self.tokenizer.pad_token_id])
                answer = text.rsplit("Answer:", 1)[-1].strip() if "Answer:" in text else None
                if answer in self.rows:
                    logits[b, t] = self.rows[answer]
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


EIGHT_TO_TWELVE = ["8", "9", "10", "11", "12"]


def answer_table(probabilities, after_label):
    """Answers 8-12 with the given probabilities (digits one token each); after a whole label, `after_label`."""
    p = dict(zip(EIGHT_TO_TWELVE, probabilities))
    ones = p["10"] + p["11"] + p["12"]
    return {
        "": {"8": p["8"], "9": p["9"], "1": ones},
        "1": {"0": p["10"] / ones, "1": p["11"] / ones, "2": p["12"] / ones},
        **{label: after_label for label in EIGHT_TO_TWELVE},
    }


@pytest.mark.parametrize("habit", ["label then EOS", "label then a full stop", "label then a bracket or newline"])
def test_a_labels_score_is_the_probability_of_answering_it_whatever_its_token_count(digit_model, habit):
    """Labels 8-12 with a digit-splitting tokenizer: 8 and 9 are one token, 10-12 two. The score of each
    label is the log-probability that the model answers it, however it ends the answer; scoring every
    label on its first two tokens (riskdpo before) made 8 and 9 pay p(EOS | 8) and 10-12 win."""
    _, tokenizer = digit_model
    after_label = {
        "label then EOS": {"<eos>": 1.0},
        "label then a full stop": {".": 0.9, "<eos>": 0.1},
        "label then a bracket or newline": {")": 0.5, "\n": 0.3, " ": 0.2},
    }[habit]
    for probabilities in ([0.2] * 5, [0.3, 0.25, 0.05, 0.15, 0.25], [0.05, 0.05, 0.4, 0.3, 0.2]):
        model = AnswerTable(tokenizer, answer_table(probabilities, after_label))
        options = situation(EIGHT_TO_TWELVE, risk_averse=["8", "12"])
        (choice,) = logprob_choices(model, tokenizer, [options], ["Pick one of 8 to 12. Answer:"], "label")
        assert [math.exp(choice.logps[label]) for label in EIGHT_TO_TWELVE] == pytest.approx(probabilities, rel=1e-5)
        assert choice.risk_averse_prob == pytest.approx(probabilities[0] + probabilities[4], rel=1e-5)
        assert choice.label_tokens == {"8": 1, "9": 1, "10": 2, "11": 2, "12": 2}


def test_the_ending_set_is_what_lets_a_label_stand_alone(digit_model):
    """EOS, spaces, newlines and punctuation end a label; digits, letters, '%' and "'s" go on."""
    _, tokenizer = digit_model
    ends = label_end_set(tokenizer)
    assert ends[tokenizer.eos_token_id]

    def single(text):
        (token_id,) = tokenizer(text, add_special_tokens=False).input_ids
        return bool(ends[token_id])

    assert all(single(text) for text in [")", ".", "\n", " ", ":", ","])
    assert not any(single(text) for text in ["0", "7", "a", "%"])
