"""`riskdpo sample-pairs`: the model's own answers, graded exactly and paired right against wrong.

Grading and pairing are checked on hand-written answers to generated
situations; sampling runs the real tiny model (random weights: its answers
are mostly unreadable, so many samples are drawn to get a few that name an
option) through the real CLI.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from helpers import tiny_model  # noqa: F401 (fixture)
from riskdpo.cli import main
from riskdpo.core.errors import UserError
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.situations import save_situations
from riskdpo.data.answers import parse_answer
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.pairs.build import find_eligible
from riskdpo.recipes.on_policy import grade_answer, pairs_from_answers, sample_answers
from riskdpo.pairs.prompting import PromptFormat


def three_option_situation():
    return next(s for s in generate_situations(GenerateSpec(situations=30, seed=2)) if len(s.option_labels) >= 3)


def test_answers_are_graded_against_the_label_sets():
    situation = three_option_situation()
    averse, neutral = situation.risk_averse[0], situation.risk_neutral[0]
    other = next(label for label in situation.option_labels if label not in (averse, neutral))
    assert grade_answer(situation, f"EV first, then CE.\nAnswer: {averse}", "risk_neutral") == "risk_averse"
    assert grade_answer(situation, f"I choose option {neutral}.", "risk_neutral") == "rejected"
    assert grade_answer(situation, f"{other}", "risk_neutral") == "other"
    assert grade_answer(situation, "I cannot decide between them", "risk_neutral") == "unparsable"
    # the rejected agent decides what "rejected" means
    timid = situation.too_risk_averse[0]
    expected = "risk_averse" if timid == averse else "rejected"
    assert grade_answer(situation, f"Answer: {timid}", "too_risk_averse") == expected


def test_pairs_take_chosen_from_risk_averse_answers_and_rejected_from_wrong_or_unreadable_ones():
    situation = three_option_situation()
    averse, neutral = situation.risk_averse[0], situation.risk_neutral[0]
    other = next(label for label in situation.option_labels if label not in (averse, neutral))
    answers = [f"Answer: {other}", "no idea", f"Answer: {averse}", f"I pick {neutral}", f"So: option {averse}."]
    result = pairs_from_answers([(situation, "risk_neutral")], [answers], instruction="Say the label.", pairs_per_situation=5)
    assert result.outcomes == Counter({"risk_averse": 2, "rejected": 1, "unparsable": 1, "other": 1})
    assert [(p["chosen"], p["rejected"], p["rejected_kind"]) for p in result.pairs] == [
        (f"Answer: {averse}", "no idea", "unparsable"),
        (f"So: option {averse}.", f"I pick {neutral}", "risk_neutral"),
    ]
    assert all(p["prompt"].endswith("Say the label.") and p["response"] == "sampled" for p in result.pairs)
    capped = pairs_from_answers([(situation, "risk_neutral")], [answers], pairs_per_situation=1)
    assert len(capped.pairs) == 1
    with pytest.raises(UserError, match="--pairs-per-situation 0"):
        pairs_from_answers([(situation, "risk_neutral")], [answers], pairs_per_situation=0)


def test_situations_without_a_pair_are_counted_by_reason():
    situation = three_option_situation()
    averse, neutral = situation.risk_averse[0], situation.risk_neutral[0]
    items = [(situation, "risk_neutral")] * 3
    answers = [[f"Answer: {averse}"], [f"Answer: {neutral}"], [f"Answer: {averse}", "??"]]
    result = pairs_from_answers(items, answers)
    assert len(result.pairs) == 1
    assert result.without_pair == Counter({"with no rejected or unparsable answer": 1, "with no risk-averse answer": 1})
    assert result.summary_lines() == [
        "answers graded: 4 (risk_averse 2, rejected 1, unparsable 1, other 0)",
        "situations without a pair: 2 (1 with no rejected or unparsable answer, 1 with no risk-averse answer)",
        "pairs written: 1",
    ]


SAMPLING = ["--samples", "40", "--temperature", "1.5", "--max-new-tokens", "2", "--batch-size", "40",
            "--precision", "fp32", "--no-chat-template", "--no-progress"]  # fmt: skip


@pytest.fixture
def situations_json(tmp_path):
    path = tmp_path / "situations.json"
    save_situations(generate_situations(GenerateSpec(situations=8, seed=1)), path)
    return path


def test_sample_pairs_is_deterministic_and_pairs_only_correctly_graded_answers(tiny_model, situations_json, tmp_path):
    runner = CliRunner()
    outputs = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    results = [
        runner.invoke(main, ["sample-pairs", "--model", str(tiny_model), "--situations", str(situations_json),
                             "-o", str(path), "--seed", "3", *SAMPLING])  # fmt: skip
        for path in outputs
    ]
    assert all(result.exit_code == 0 for result in results), results[0].output
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    pairs = [json.loads(line) for line in outputs[0].read_text().splitlines()]
    assert pairs
    from riskdpo.data.situations import load_situations

    situations = {s.situation_id: s for s in load_situations(situations_json)}
    for pair in pairs:
        source = situations[pair["situation_id"]]
        assert parse_answer(pair["chosen"], source.option_labels, source.answer_variants) in source.risk_averse
        rejected = parse_answer(pair["rejected"], source.option_labels, source.answer_variants)
        assert rejected is None or rejected in source.risk_neutral
        assert pair["rejected_kind"] == ("unparsable" if rejected is None else "risk_neutral")
    # the summary counts every sampled answer, graded as the library grades it
    items = find_eligible(list(situations.values())).kept
    model, tokenizer = load_model(str(tiny_model)), load_tokenizer(str(tiny_model))
    answers = sample_answers(model, tokenizer, [s for s, _ in items], PromptFormat(chat_template=False),
                             samples=40, temperature=1.5, seed=3, batch_size=40, max_new_tokens=2)  # fmt: skip
    outcomes = Counter(grade_answer(s, text, "risk_neutral") for (s, _), texts in zip(items, answers) for text in texts)
    assert f"answers graded: {len(items) * 40} (risk_averse {outcomes['risk_averse']}, " in results[0].output
    assert f"pairs written: {len(pairs)}" in results[0].output
    other_seed = sample_answers(model, tokenizer, [s for s, _ in items], PromptFormat(chat_template=False),
                                samples=40, temperature=1.5, seed=4, batch_size=40, max_new_tokens=2)  # fmt: skip
    assert other_seed != answers


@pytest.mark.parametrize(
    "args, message",
    [
        (["--samples", "3", "--temperature", "0"], "--samples 3 needs --temperature above 0"),
        (["--samples", "1", "--max-new-tokens", "1", "--sample-size", "2"], "no situation gave both a chosen and a rejected answer"),
        (["--rejected", "too-risk-averse", "--sheet", "nope"], "no situations from sheet 'nope'"),
        (["--chat-template-kwargs", "enable_thinking"], "enable_thinking"),
    ],
)
def test_sample_pairs_user_errors_exit_2_one_line_no_file(tiny_model, situations_json, tmp_path, args, message):
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["sample-pairs", "--model", str(tiny_model), "--situations", str(situations_json),
                                       "-o", str(out), "--precision", "fp32", "--no-progress", *args])  # fmt: skip
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr
    assert not out.exists()


def test_sample_pairs_never_writes_over_its_input(tiny_model, situations_json):
    before = situations_json.read_bytes()
    result = CliRunner().invoke(main, ["sample-pairs", "--model", str(tiny_model), "--situations", str(situations_json),
                                       "-o", str(situations_json.with_suffix(".json")), "--no-progress"])  # fmt: skip
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"{situations_json}: is also an input; writing it would destroy the input" in result.stderr
    assert situations_json.read_bytes() == before
