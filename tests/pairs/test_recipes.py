"""make-pairs recipes: position-balanced pairs and verified chain-of-thought responses.

Balanced files are checked against the prompts themselves: every pair's chosen
and rejected labels are recomputed from the lotteries its (rotated) prompt
shows. Reasoning is read back with the answer parser that scores models.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from riskdpo.cli import main
from riskdpo.data.expected_utility import RISK_AVERSE_ALPHA, TOO_RISK_AVERSE_ALPHA, best_labels, certainty_equivalent
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.labels import canonical_label, find_option_texts
from riskdpo.data.lotteries import prompt_lottery
from riskdpo.data.reasoning import format_money
from riskdpo.data.situations import save_situations
from riskdpo.data.answers import parse_answer
from riskdpo.pairs.balance import balanced_rotations, line_counts
from riskdpo.pairs.build import build_pairs, find_eligible, select_pairs

AGENT_ALPHA = {"risk_neutral": 0.0, "too_risk_averse": TOO_RISK_AVERSE_ALPHA}


def generated(count=120, sheet="train", seed=5, **kwargs):
    return generate_situations(GenerateSpec(situations=count, sheet=sheet, seed=seed, **kwargs))


def mixed_situations():
    """Generated situations of 2-5 options at several stakes, some with sheet reasoning."""
    return (
        generated(90, stakes="medium", cot=True)
        + generated(60, sheet="astro", seed=6, stakes="astronomical")
        + generated(40, sheet="coop", seed=7, framing="cooperate", stakes="high")
    )


def prompt_best(prompt: str, alpha: float) -> list[str]:
    """The best labels recomputed from the lotteries the prompt shows."""
    lotteries = []
    for _, label, text in find_option_texts(prompt):
        prizes, probs = prompt_lottery(text)
        lotteries.append((label, prizes, probs))
    return best_labels(lotteries, alpha)


def label_lines(pairs, which):
    """Per number of options, how often each line (1-based) holds the pair's `which` label."""
    counts: dict[int, Counter] = {}
    for pair in pairs:
        labels = [label for _, label, _ in find_option_texts(pair["prompt"])]
        counts.setdefault(len(labels), Counter())[labels.index(pair[which]) + 1] += 1
    return counts


# ------------------------------------------------------------------ balance


def test_all_rotations_balance_every_line_exactly_and_labels_follow_the_lotteries():
    situations = mixed_situations()
    built = build_pairs(find_eligible(situations, "risk-neutral"), balance_positions=5)
    kept = len(find_eligible(situations, "risk-neutral").kept)
    assert len(built.pairs) == sum(len(s.option_labels) for s, _ in find_eligible(situations, "risk-neutral").kept)
    for which in ("chosen", "rejected"):
        for count, lines in label_lines(built.pairs, which).items():
            assert sorted(lines) == list(range(1, count + 1))
            assert len(set(lines.values())) == 1, (which, count, lines)  # exactly uniform
    for pair in built.pairs:
        assert [pair["chosen"]] == prompt_best(pair["prompt"], RISK_AVERSE_ALPHA)
        assert [pair["rejected"]] == prompt_best(pair["prompt"], 0.0)
    # as written, the chosen line is far from uniform in these sheets; the summary says both
    before = line_counts(built.lines_before)
    assert sum(sum(chosen.values()) for chosen, _ in before.values()) == kept
    assert any(len(set(chosen[line] for line in range(n))) > 1 for n, (chosen, _) in before.items())


@pytest.mark.parametrize("renderings", [1, 2, 3])
def test_fewer_renderings_than_options_are_as_even_as_possible(renderings):
    situations = mixed_situations()
    built = build_pairs(find_eligible(situations, "bucket", seed=3), balance_positions=renderings, seed=3)
    for which in ("chosen", "rejected"):
        for count, lines in label_lines(built.pairs, which).items():
            values = [lines[line] for line in range(1, count + 1)]
            if which == "chosen":
                assert max(values) - min(values) <= 1, (count, values)
            else:  # within a few percent of uniform
                assert max(values) - min(values) <= max(2, 0.05 * sum(values)), (count, values)
    for pair in built.pairs:
        assert [pair["chosen"]] == prompt_best(pair["prompt"], RISK_AVERSE_ALPHA)
        assert [pair["rejected"]] == prompt_best(pair["prompt"], AGENT_ALPHA[pair["rejected_kind"]])


def test_select_pairs_balances_with_augmented_variants_too():
    situations = generated(40, stakes="low")
    pairs = select_pairs(situations, balance_positions=5, augment_variants=1)
    # each rendering gives its pair and one variant pair, both naming the rotated labels
    assert len(pairs) == 2 * sum(len(s.option_labels) for s in situations)
    for first, variant in zip(pairs[::2], pairs[1::2]):
        assert first["prompt"] == variant["prompt"] and first["option_order"] == variant["option_order"]
        assert [first["chosen"]] == prompt_best(first["prompt"], RISK_AVERSE_ALPHA)
        assert canonical_label(variant["chosen"]) == first["chosen"]


def test_balanced_rotations_are_distinct_seeded_and_cover_small_situations_fully():
    items = [(2, 0, 1), (3, 0, 2), (5, 1, 4), (4, 3, 0)] * 5
    first = balanced_rotations(items, 3, seed=1)
    assert first == balanced_rotations(items, 3, seed=1) and first != balanced_rotations(items, 3, seed=2)
    for (count, _, _), offsets in zip(items, first):
        assert len(offsets) == min(3, count) == len(set(offsets)) and all(0 <= o < count for o in offsets)
    with pytest.raises(ValueError, match="at least 1"):
        balanced_rotations(items, 0)


def test_balanced_cot_reasoning_is_written_for_each_rotation():
    situations = generated(30, stakes="low", cot=True)  # the sheet's reasoning describes the lotteries as written
    built = build_pairs(find_eligible(situations), response="cot", balance_positions=5)
    assert {pair["reasoning"] for pair in built.pairs} == {"written"}
    for pair in built.pairs:
        assert pair["chosen"].endswith(f"Answer: {prompt_best(pair['prompt'], RISK_AVERSE_ALPHA)[0]}")
        assert pair["rejected"].endswith(f"Answer: {prompt_best(pair['prompt'], 0.0)[0]}")
        # each option line of the reasoning works with the lottery the prompt shows on that line
        for _, label, text in find_option_texts(pair["prompt"]):
            prizes, probs = prompt_lottery(text)
            line = next(row for row in pair["chosen"].splitlines() if row.startswith(f"Option {label}:"))
            ev = sum(p * x for p, x in zip(probs, prizes))
            ce = certainty_equivalent(prizes, probs, RISK_AVERSE_ALPHA)
            assert line.endswith(f"= {format_money(ev, cents=True)}; certainty equivalent CE(0.01) = {format_money(ce, cents=True)}.")


def run(*args):
    return CliRunner().invoke(main, ["make-pairs", *map(str, args)])


@pytest.fixture
def situations_json(tmp_path):
    path = tmp_path / "situations.json"
    save_situations(mixed_situations(), path)
    return path


def test_cli_balance_same_seed_same_file_and_summary_before_after(situations_json, tmp_path):
    paths = [tmp_path / f"{name}.jsonl" for name in ("one", "two", "three")]
    results = [
        run(situations_json, "-o", path, "--balance-positions", 2, "--seed", seed, "--val-fraction", 0.2)
        for path, seed in zip(paths, (4, 4, 5))
    ]
    assert all(result.exit_code == 0 for result in results), results[0].output
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    output = results[0].output
    for line in ("chosen line, as written: 2 options: line 1 ", "rejected line, as written: ",
                 "chosen line, balanced: 2 options: line 1 ", "rejected line, balanced: "):  # fmt: skip
        assert line in output
    balanced = next(line for line in output.splitlines() if line.startswith("chosen line, balanced"))
    for part in balanced.split(": ", 1)[1].split("; "):
        counts = [int(item.rsplit(" ", 1)[1]) for item in part.split(": ", 1)[1].split(", ")]
        assert max(counts) - min(counts) <= 1
    train = [json.loads(line) for line in paths[0].read_text().splitlines()]
    validation = [json.loads(line) for line in (tmp_path / "one_val.jsonl").read_text().splitlines()]
    # the renderings of a situation stay on one side of the split
    assert not {(p["sheet"], p["situation_id"]) for p in train} & {(p["sheet"], p["situation_id"]) for p in validation}
    assert all(len(p["option_order"]) == len(find_option_texts(p["prompt"])) for p in train)


# ------------------------------------------------------------------ reasoning


@pytest.mark.parametrize("policy, agent", [("risk-neutral", "risk_neutral"), ("too-risk-averse", "too_risk_averse")])
def test_written_reasoning_names_the_right_options_with_matched_structure(policy, agent):
    situations = generated(60, stakes="medium", keep="differences") + generated(30, sheet="astro", stakes="astronomical")
    pairs = build_pairs(find_eligible(situations, policy), response="cot").pairs
    assert pairs and {pair["reasoning"] for pair in pairs} == {"written"}
    by_key = {(s.sheet, s.situation_id): s for s in situations}
    for pair in pairs:
        source = by_key[(pair["sheet"], pair["situation_id"])]
        assert parse_answer(pair["chosen"], source.option_labels) == source.risk_averse[0]
        assert parse_answer(pair["rejected"], source.option_labels) == getattr(source, agent)[0]
        chosen, rejected = pair["chosen"].splitlines(), pair["rejected"].splitlines()
        assert len(chosen) == len(rejected) == len(source.options) + 3
        assert chosen[:-2] == rejected[:-2]  # the same computations; only the rule and the answer differ
        assert 0.97 < len(pair["chosen"]) / len(pair["rejected"]) < 1.03
        shown = "alpha = 0.01 and alpha = 0.1." if agent == "too_risk_averse" else "alpha = 0.01."
        assert chosen[0].endswith(shown)


def test_sheet_reasoning_is_checked_and_mismatches_are_counted(tmp_path):
    # rejected_full of a generated sheet is the linear agent's reasoning where it differs from the
    # risk-averse best: under --rejected too-risk-averse it answers the wrong option unless the two agree.
    situations = generated(80, stakes="medium", keep="differences", cot=True)
    built = build_pairs(find_eligible(situations, "too-risk-averse"), response="cot")
    eligible = find_eligible(situations, "too-risk-averse").kept
    expected_mismatches = sum(
        1
        for situation, _ in eligible
        if parse_answer(situation.meta["rejected_full"], situation.option_labels) != situation.too_risk_averse[0]
    )
    assert 0 < expected_mismatches < len(eligible)
    assert built.dropped == Counter({"whose rejected_full does not answer the too_risk_averse option": expected_mismatches})
    assert len(built.pairs) == len(eligible) - expected_mismatches
    for pair in built.pairs:
        assert pair["reasoning"] == "sheet"
    path = tmp_path / "s.json"
    save_situations(situations, path)
    result = run(path, "-o", tmp_path / "p.jsonl", "--response", "cot", "--rejected", "too-risk-averse")
    assert result.exit_code == 0, result.output
    assert f"left out: {expected_mismatches} whose rejected_full does not answer the too_risk_averse option" in result.output
    ratio_line = next(line for line in result.output.splitlines() if line.startswith("reasoning: "))
    chars = sum(len(p["chosen"]) for p in built.pairs) / sum(len(p["rejected"]) for p in built.pairs)
    assert ratio_line.startswith(f"reasoning: {len(built.pairs)} from the sheet, 0 written from the lotteries")
    assert f"chosen/rejected length {chars:.2f} (characters)" in ratio_line


def test_written_reasoning_that_contradicts_the_labels_is_left_out():
    situations = generated(10, stakes="medium")
    wrong = situations[0]
    wrong.risk_averse, wrong.risk_neutral = wrong.risk_neutral, wrong.risk_averse  # labels the lotteries do not give
    built = build_pairs(find_eligible(situations), response="cot")
    assert built.dropped == Counter({"whose lotteries do not give its risk-averse label": 1})
    assert wrong.situation_id not in {pair["situation_id"] for pair in built.pairs} and len(built.pairs) == 9
