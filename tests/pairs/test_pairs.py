"""`riskdpo make-pairs` and `riskdpo.pairs.build`: which situations make pairs, and how.

Small hand-built situations pin down each rule; generated situations (real
`Situation` objects from `riskdpo.data.generate`) give the volume for sampling,
coin and split checks. The CLI runs on real situations.json files.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from riskdpo.cli import main
from riskdpo.core.errors import UserError
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.labels import answer_variants
from riskdpo.pairs.build import (
    bucket_coin,
    find_eligible,
    select_pairs,
    split_by_situation,
    variant_pairs,
)
from riskdpo.data.situations import Situation, save_situations

INSTRUCTION = "Output the label of your chosen option only."
CLOSING = "You can think about which you'd choose and then output your answer."


def situation(sid, ra, rn, tra, bucket=None, written=("(a)", "(b)", "(c)"), sheet="train", **meta) -> Situation:
    labels = [w.strip("().") for w in written]
    lines = [f"{w} 50% probability of ${10 * (i + 1)}, 50% probability of $0" for i, w in enumerate(written)]
    prompt = "\n".join(["Choose one of the following options.", *lines, f"Which option do you choose? {CLOSING}"])
    return Situation(
        situation_id=str(sid), sheet=sheet, prompt=prompt, option_labels=labels, labels_as_written=list(written),
        risk_averse=list(ra), risk_neutral=list(rn), too_risk_averse=list(tra),
        answer_variants={label: answer_variants(label, w) for label, w in zip(labels, written)},
        meta={"low_bucket_label": bucket, **meta},
    )  # fmt: skip


@pytest.fixture
def hand_built() -> list[Situation]:
    return [
        situation(1, ["b"], ["a"], ["b"], "lin_only"),  # disagreement; alpha 0.10 agrees
        situation(2, ["a"], ["a"], ["b"], "010_only"),  # agreement; only alpha 0.10 differs
        situation(3, ["b"], ["a"], ["c"], "both"),
        situation(4, ["b"], ["a"], [], None),  # no alpha 0.10 labels, no bucket
        situation(5, ["b"], ["c", "a"], ["b"], "lin_only"),  # linear tie, listed out of prompt order
        situation(6, [], ["a"], ["b"], "lin_only"),  # no risk-averse labels
    ]


def generated(count=200, sheet="train", seed=5, **kwargs) -> list[Situation]:
    return generate_situations(GenerateSpec(situations=count, sheet=sheet, seed=seed, **kwargs))


def by_id(pairs):
    return {pair["situation_id"]: pair for pair in pairs}


def test_risk_neutral_policy_keeps_disagreements_only(hand_built):
    pairs = by_id(select_pairs(hand_built, "risk-neutral"))
    assert sorted(pairs) == ["1", "3", "4", "5"]
    assert {sid: (p["chosen"], p["rejected"], p["rejected_kind"]) for sid, p in pairs.items()} == {
        "1": ("b", "a", "risk_neutral"),
        "3": ("b", "a", "risk_neutral"),
        "4": ("b", "a", "risk_neutral"),
        "5": ("b", "a", "risk_neutral"),  # tie {c, a}: the first in prompt order
    }
    eligible = find_eligible(hand_built, "risk-neutral")
    assert eligible.read == 6 and eligible.skipped == Counter(
        {"where the risk_neutral best is also risk-averse best": 1, "without risk_averse labels": 1}
    )


def test_too_risk_averse_policy_needs_a_disjoint_alpha_010_set(hand_built):
    pairs = by_id(select_pairs(hand_built, "too-risk-averse"))
    assert {sid: (p["chosen"], p["rejected"]) for sid, p in pairs.items()} == {"2": ("a", "b"), "3": ("b", "c")}
    assert all(p["rejected_kind"] == "too_risk_averse" for p in pairs.values())
    skipped = find_eligible(hand_built, "too-risk-averse").skipped
    assert skipped["without too_risk_averse labels"] == 1
    assert skipped["where the too_risk_averse best is also risk-averse best"] == 2


def test_bucket_policy_follows_low_bucket_label_with_a_seeded_coin_for_both(hand_built):
    for seed in range(6):
        pairs = by_id(select_pairs(hand_built, "bucket", seed=seed))
        assert pairs["1"]["rejected_kind"] == "risk_neutral" and pairs["2"]["rejected_kind"] == "too_risk_averse"
        coin = bucket_coin(seed, "train", "3")
        assert pairs["3"]["rejected_kind"] == coin
        assert pairs["3"]["rejected"] == {"risk_neutral": "a", "too_risk_averse": "c"}[coin]
        assert "4" not in pairs
    assert find_eligible(hand_built, "bucket").skipped["without low_bucket_label"] == 1


def test_bucket_coin_is_fair_and_independent_of_order_and_sample():
    situations = [s for s in generated(300, keep="differences") if s.meta["low_bucket_label"] == "both"]
    kinds = {p["situation_id"]: p["rejected_kind"] for p in select_pairs(situations, "bucket", seed=3)}
    assert 0.3 < Counter(kinds.values())["risk_neutral"] / len(kinds) < 0.7
    reversed_kinds = {p["situation_id"]: p["rejected_kind"] for p in select_pairs(situations[::-1], "bucket", seed=3)}
    sampled = select_pairs(situations, "bucket", seed=3, sample_size=10)
    assert reversed_kinds == kinds and all(kinds[p["situation_id"]] == p["rejected_kind"] for p in sampled)
    # the coin depends on the sheet too, not only on the id
    assert any(bucket_coin(3, "train", str(i)) != bucket_coin(3, "other", str(i)) for i in range(20))


def test_sampling_is_reproducible_and_draws_from_kept_situations():
    situations = generated(120)
    first = select_pairs(situations, sample_size=30, seed=1)
    assert first == select_pairs(situations, sample_size=30, seed=1)
    other = select_pairs(situations, sample_size=30, seed=2)
    assert len(first) == len(other) == 30 and first != other
    ids = [p["situation_id"] for p in first]
    assert len(set(ids)) == 30 and set(ids) <= {s.situation_id for s in situations}
    assert ids == sorted(ids, key=int), "sampled situations keep their original order"


def test_sheet_filter_and_unknown_sheet(hand_built):
    mixed = hand_built + [situation(1, ["b"], ["a"], ["c"], "lin_only", sheet="test")]
    assert {p["sheet"] for p in select_pairs(mixed, sheets=["test"])} == {"test"}
    assert find_eligible(mixed, sheets=["test"]).skipped["from other sheets"] == 6
    with pytest.raises(UserError, match="no situations from sheet 'nope'"):
        find_eligible(mixed, sheets=["nope"])


def test_no_eligible_situation_is_a_user_error_saying_why(hand_built):
    with pytest.raises(UserError, match="of 1 read, 1 without too_risk_averse labels"):
        select_pairs([hand_built[3]], "too-risk-averse")


def test_responses_as_written_and_instruction_rewritten(hand_built):
    (pair,) = select_pairs(hand_built[:1], response="as-written", instruction=INSTRUCTION)
    assert (pair["chosen"], pair["rejected"]) == ("(b)", "(a)")
    assert pair["prompt"].endswith(f"Which option do you choose? {INSTRUCTION}") and CLOSING not in pair["prompt"]
    assert pair["instruction"] == INSTRUCTION and pair["response"] == "as-written"
    (plain,) = select_pairs(hand_built[:1])
    assert plain["prompt"] == hand_built[0].prompt and plain["instruction"] is None


def test_cot_responses_come_from_the_sheet_and_are_required(hand_built):
    with_cot = situation(9, ["b"], ["a"], ["c"], "lin_only", chosen_full="Safer.\nAnswer: b", rejected_full="EV.\nAnswer: a")
    (pair,) = select_pairs([with_cot], response="cot")
    assert (pair["chosen"], pair["rejected"]) == ("Safer.\nAnswer: b", "EV.\nAnswer: a")
    with pytest.raises(UserError, match="sheet 'train', situation 1: --response cot needs a chosen_full column"):
        select_pairs(hand_built[:1], response="cot")
    sources = generated(10, cot=True)
    for pair, source in zip(select_pairs(sources, response="cot"), sources, strict=True):
        assert pair["chosen"] == source.meta["chosen_full"] and pair["rejected"] == source.meta["rejected_full"]
        assert pair["chosen"].endswith(f"Answer: {source.risk_averse[0]}")


def test_augmented_variants_write_both_labels_the_same_way(hand_built):
    pairs = select_pairs(hand_built[:1], augment_variants=4)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("b", "a"), ("(b)", "(a)"), ("B", "A"), ("b.", "a."), ("b)", "a)")]
    assert {p["situation_id"] for p in pairs} == {"1"}
    shapes = variant_pairs(situation(7, ["o"], ["n"], [], written=("n.", "o.")), "o", "n")
    assert ("Option o", "Option n") in shapes and ("O", "N") in shapes and ("o.", "n.") in shapes


def test_validation_split_shares_no_situation():
    situations = generated(80)
    pairs = select_pairs(situations, augment_variants=2)
    train, validation = split_by_situation(pairs, 0.25, seed=4)
    train_ids = {(p["sheet"], p["situation_id"]) for p in train}
    val_ids = {(p["sheet"], p["situation_id"]) for p in validation}
    assert not train_ids & val_ids and len(val_ids) == 20 and len(train_ids) == 60
    assert len(train) + len(validation) == len(pairs)
    assert split_by_situation(pairs, 0.25, seed=4) == (train, validation)
    assert split_by_situation(pairs, 0.25, seed=5) != (train, validation)


# ----------------------------------------------------------------------------- CLI


def run(*args):
    return CliRunner().invoke(main, ["make-pairs", *map(str, args)])


@pytest.fixture
def situations_json(tmp_path) -> Path:
    path = tmp_path / "situations.json"
    save_situations(generated(60, cot=True) + generated(20, sheet="test", seed=6), path)
    return path


def test_cli_jsonl_and_json_hold_the_same_records(situations_json, tmp_path):
    as_jsonl, as_json = tmp_path / "pairs.jsonl", tmp_path / "pairs.json"
    first = run(situations_json, "-o", as_jsonl, "--sheet", "train", "--sample_size", 25, "--seed", 2)
    second = run(situations_json, "-o", as_json, "--sheet", "train", "--sample-size", 25, "--seed", 2)
    assert first.exit_code == second.exit_code == 0
    lines = [json.loads(line) for line in as_jsonl.read_text().splitlines()]
    assert as_json.read_text().lstrip().startswith("[") and json.loads(as_json.read_text()) == lines
    assert len(lines) == 25 and set(lines[0]) == {
        "prompt", "chosen", "rejected", "situation_id", "sheet", "rejected_kind", "response", "instruction"
    }  # fmt: skip
    assert "situations read: 80" in first.output and "skipped: 20 from other sheets" in first.output
    assert "sampled: 25 of the 60 kept situations" in first.output


def test_cli_val_split_files(situations_json, tmp_path):
    out = tmp_path / "pairs.jsonl"
    result = run(situations_json, "-o", out, "--val-fraction", 0.2, "--response", "cot", "--sheet", "train",
                 "--instruction", INSTRUCTION)  # fmt: skip
    assert result.exit_code == 0, result.output
    train = [json.loads(line) for line in out.read_text().splitlines()]
    validation = [json.loads(line) for line in (tmp_path / "pairs_val.jsonl").read_text().splitlines()]
    assert len(validation) == 12 and len(train) == 48
    assert not {p["situation_id"] for p in train} & {p["situation_id"] for p in validation}
    assert all(p["response"] == "cot" and p["chosen"].startswith("I compare") for p in train + validation)
    assert all(p["prompt"].endswith(INSTRUCTION) and p["instruction"] == INSTRUCTION for p in train)
    assert "pairs written: 48 train, 12 validation" in result.output
    explicit = tmp_path / "held_out.json"
    assert run(situations_json, "-o", out, "--val-fraction", 0.5, "--val-output", explicit).exit_code == 0
    assert isinstance(json.loads(explicit.read_text()), list)


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "{tmp}/pairs.txt"], "pairs are written as .jsonl or .json"),
        (["-o", "{tmp}/pairs.jsonl", "--val-fraction", "1.5"], "--val-fraction 1.5"),
        (["-o", "{tmp}/pairs.jsonl", "--sheet", "nope"], "no situations from sheet 'nope'"),
        (["-o", "{tmp}/pairs.jsonl", "--balance-positions", "0"], "--balance-positions 0: must be at least 1"),
        (["-o", "{tmp}/pairs.jsonl", "--val-fraction", "0.1", "--val-output", "{tmp}/pairs.jsonl"], "other than --output"),
    ],
)
def test_cli_user_errors_exit_2_one_line_no_output(situations_json, tmp_path, args, message):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run(situations_json, *[arg.format(tmp=out_dir) for arg in args])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and message in result.stderr
    assert list(out_dir.iterdir()) == []


def test_cli_cot_without_reasoning_columns_or_lotteries_is_a_user_error(hand_built, tmp_path):
    # A sheet with neither chosen_full/rejected_full nor option lotteries (generated sheets have
    # lotteries: their reasoning is written, see test_recipes.py).
    path = tmp_path / "bare.json"
    save_situations(hand_built[:1], path)
    result = run(path, "-o", tmp_path / "pairs.jsonl", "--response", "cot")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "sheet 'train', situation 1: --response cot needs a chosen_full column" in result.stderr
    assert not (tmp_path / "pairs.jsonl").exists()


def test_cli_no_eligible_situation(tmp_path):
    path = tmp_path / "agree.json"
    save_situations([situation(1, ["a"], ["a"], ["a"], None)], path)
    result = run(path, "-o", tmp_path / "pairs.jsonl")
    assert result.exit_code == 2 and "no situation can make a pair" in result.stderr
    assert not (tmp_path / "pairs.jsonl").exists()


def test_generate_convert_make_pairs_end_to_end(tmp_path):
    from riskdpo.data.convert import read_situations

    book, situations_path, pairs_path = tmp_path / "book.xlsx", tmp_path / "situations.json", tmp_path / "pairs.jsonl"
    cli = CliRunner()
    for args in (
        ["--sheet", "train", "--situations", 40, "--keep", "differences", "--cot"],
        ["--append", "--sheet", "test_astronomical", "--stakes", "astronomical", "--situations", 20, "--include-agreements"],
        ["--append", "--sheet", "test_cooperate", "--framing", "cooperate", "--stakes", "medium", "--situations", 20],
    ):
        assert cli.invoke(main, ["generate", "-o", str(book), *map(str, args)]).exit_code == 0
    converted = read_situations([book], verify=True)
    assert converted.mismatches == [] and converted.skipped == [] and len(converted.situations) == 80
    assert cli.invoke(main, ["convert", str(book), "-o", str(situations_path)]).exit_code == 0
    result = run(situations_path, "-o", pairs_path, "--sheet", "train", "--rejected", "bucket", "--seed", 1)
    assert result.exit_code == 0, result.output
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines()]
    train = {s.situation_id: s for s in converted.situations if s.sheet == "train"}
    assert len(pairs) == 40 and {p["rejected_kind"] for p in pairs} == {"risk_neutral", "too_risk_averse"}
    for pair in pairs:
        source = train[pair["situation_id"]]
        assert pair["chosen"] == source.risk_averse[0] and pair["prompt"] == source.prompt
        assert pair["rejected"] == getattr(source, pair["rejected_kind"])[0] != pair["chosen"]
    cot = run(situations_path, "-o", tmp_path / "cot.json", "--sheet", "train", "--response", "cot")
    assert cot.exit_code == 0
    for pair in json.loads((tmp_path / "cot.json").read_text()):
        assert pair["chosen"].endswith(f"Answer: {train[pair['situation_id']].risk_averse[0]}")
        assert pair["rejected"].endswith(f"Answer: {train[pair['situation_id']].risk_neutral[0]}")
