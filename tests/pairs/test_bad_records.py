"""Class 8 of issue 12, bad records downstream: make-pairs, eval-choices and
tiny-model read situations.json with the rules convert applies
(`situation_problem`), and train and make-pairs hold pairs to one contract
(`pair_problem`): a bad record is refused in one line, never passed on.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import assert_refused, tree_digest
from riskdpo.cli import main
from riskdpo.core.errors import UserError
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.situations import situation_problem
from riskdpo.pairs.records import pair_problem, read_pair_records
from riskdpo.training.pair_data import load_pairs


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def readers(situations: Path, out: Path) -> dict[str, list]:
    """Every command that reads situations.json, writing under `out`."""
    return {
        "make-pairs": ["make-pairs", situations, "-o", out / "pairs.jsonl"],
        "eval-choices": ["eval-choices", "--model", "tiny", "--situations", situations, "-o", out / "report.json"],
        "tiny-model": ["tiny-model", out / "model", "--situations", situations],
    }


def sound_situations() -> list[dict]:
    spec = GenerateSpec(situations=3, seed=1, cot=True, sheet="train")
    return [situation.to_json() for situation in generate_situations(spec)]


def spoil_second(change) -> list:
    records = sound_situations()
    records[1] = change(records[1])
    return records


BAD_SITUATIONS = {
    "not an object": (lambda record: ["a", "list"], "situation 2: not a situation (expected a JSON object, not a list)"),
    "a number": (lambda record: 7, "situation 2: not a situation (expected a JSON object, not a number)"),
    "missing field": (lambda record: {k: v for k, v in record.items() if k != "option_labels"}, "missing field option_labels"),
    "null prompt": (lambda record: {**record, "prompt": None}, "situation 2 (id 2): prompt is null, expected text"),
    "empty prompt": (lambda record: {**record, "prompt": "  "}, "prompt is empty"),
    "risk-averse label not an option": (
        lambda record: {**record, "risk_averse": ["z"]}, "risk_averse names 'z', which is not an option of the prompt"),
    "label sets not a list": (lambda record: {**record, "risk_neutral": "a"}, "risk_neutral is text, expected a list"),
    "probabilities off": (  # 0.7 for each outcome never sums to 1
        lambda record: {**record, "options": [{**option, "probs": [0.7] * len(option["prizes"])} for option in record["options"]]},
        "do not sum to 1"),
    "one option": (lambda record: {**record, "option_labels": record["option_labels"][:1]}, "option_labels must list 2 or more"),
    "same id twice": (lambda record: {**record, "situation_id": "1"}, "already has situation_id 1 (situation 1)"),
}


@pytest.mark.parametrize("command", ["make-pairs", "eval-choices", "tiny-model"])
@pytest.mark.parametrize("case", list(BAD_SITUATIONS))
def test_every_reader_refuses_a_bad_situation_by_the_same_rules(tmp_path, command, case):
    change, message = BAD_SITUATIONS[case]
    situations = tmp_path / "situations.json"
    situations.write_text(json.dumps(spoil_second(change)), encoding="utf-8")
    before = tree_digest(tmp_path)
    assert_refused(run(*readers(situations, tmp_path)[command]), "situations.json, situation 2", message)
    assert tree_digest(tmp_path) == before


def test_the_sound_file_passes_every_rule(tmp_path):
    """The records spoiled above are sound before spoiling: each refusal is the change's doing."""
    situations = tmp_path / "situations.json"
    situations.write_text(json.dumps(sound_situations()), encoding="utf-8")
    result = run(*readers(situations, tmp_path)["make-pairs"])
    assert result.exit_code == 0, result.output
    assert len(read_pair_records(tmp_path / "pairs.jsonl")) == 3


def test_convert_applies_the_same_rules_to_what_it_builds():
    from riskdpo.data.situations import Situation

    situation = Situation.from_json(sound_situations()[0])
    assert situation_problem(situation) is None
    situation.risk_averse = ["z"]
    assert "risk_averse names 'z'" in situation_problem(situation)


def test_make_pairs_never_writes_a_pair_whose_chosen_equals_its_rejected(tmp_path):
    # The sheet's rejected reasoning is the chosen one: its final answer names the
    # risk-averse option, not the rejected agent's, so the situation is left out and
    # counted (the reasoning check of `--response cot`), never written as a pair.
    records = sound_situations()
    records[2]["meta"]["rejected_full"] = records[2]["meta"]["chosen_full"]
    situations = tmp_path / "situations.json"
    situations.write_text(json.dumps(records), encoding="utf-8")
    result = run("make-pairs", situations, "--response", "cot", "-o", tmp_path / "pairs.jsonl")
    assert result.exit_code == 0, result.output
    assert "left out: 1 whose rejected_full does not answer" in result.output
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 2 and all(pair["chosen"] != pair["rejected"] for pair in pairs)
    assert records[2]["situation_id"] not in {pair["situation_id"] for pair in pairs}


PAIRS = {
    "same answer": ({"prompt": "p", "chosen": "a", "rejected": " a "}, "record 2: chosen and rejected are the same answer"),
    "null prompt": ({"prompt": None, "chosen": "a", "rejected": "b"}, "record 2: no prompt text"),
    "not an object": (["p", "a", "b"], "record 2: expected a JSON object"),
}


@pytest.mark.parametrize("case", list(PAIRS))
def test_train_refuses_a_bad_pair_record(tmp_path, case):
    record, message = PAIRS[case]
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(UserError, match=message):
        load_pairs(path)


def test_pair_problem_accepts_a_sound_pair_with_any_provenance():
    assert pair_problem({"prompt": "p", "chosen": "a", "rejected": "b", "sheet": "train", "extra": [1]}) is None


def test_tiny_model_refuses_a_file_without_situations(tmp_path):
    situations = tmp_path / "situations.json"
    situations.write_text("[]", encoding="utf-8")
    before = tree_digest(tmp_path)
    assert_refused(run("tiny-model", tmp_path / "model", "--situations", situations), "holds no situations")
    assert tree_digest(tmp_path) == before


def test_reasoning_with_unicode_line_separators_survives_make_pairs_and_reading_back(tmp_path):
    """A worked answer holding U+2028, U+2029 and U+0085 (models write them; JSON keeps them raw
    when written with ensure_ascii=False) is one JSONL record, read back whole: never cut in two
    by a reader that splits lines the way str.splitlines does."""
    records = sound_situations()
    separators = "\u2028\u2029\x85"
    for record in records:
        record["meta"]["chosen_full"] = record["meta"]["chosen_full"].replace(".", "." + separators, 1)
    source = tmp_path / "situations.json"
    source.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "pairs.jsonl"
    result = run("make-pairs", source, "-o", out, "--response", "cot")
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) > len(records)  # raw separators in the file
    pairs = read_pair_records(out)
    assert len(pairs) == len(records)
    assert all(separators in pair["chosen"] for pair in pairs)
