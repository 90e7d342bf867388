"""Shuffling lotteries between option lines keeps every label set true to its lottery."""

from __future__ import annotations

import dataclasses
import json
import random

from click.testing import CliRunner

from helpers import tiny_model  # noqa: F401 (fixture)
from riskdpo.cli import main
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.labels import find_option_texts
import pytest

from riskdpo.data.shuffle import can_move_options, permute_options, rotation, shuffle_all, shuffle_options, situation_rng
from riskdpo.data.situations import save_situations
from riskdpo.data.expected_utility import RISK_AVERSE_ALPHA, TOO_RISK_AVERSE_ALPHA, best_labels


def situations(stakes="low", framing="plain", count=40):
    return generate_situations(GenerateSpec(situations=count, stakes=stakes, seed=11, framing=framing, sheet="s"))


def test_label_sets_follow_their_lotteries():
    moved_any = False
    for original in situations() + situations("astronomical") + situations("medium", "cooperate"):
        shuffled = shuffle_options(original, situation_rng(3, original))
        assert shuffled.option_labels == original.option_labels
        assert shuffled.labels_as_written == original.labels_as_written
        lotteries = [(o.label, o.prizes, o.probs) for o in shuffled.options]
        assert shuffled.risk_averse == best_labels(lotteries, RISK_AVERSE_ALPHA)
        assert shuffled.risk_neutral == best_labels(lotteries, 0.0)
        assert shuffled.too_risk_averse == best_labels(lotteries, TOO_RISK_AVERSE_ALPHA)
        before, after = find_option_texts(original.prompt), find_option_texts(shuffled.prompt)
        assert [w for w, _, _ in after] == [w for w, _, _ in before]
        order = [original.option_labels.index(label) for label in shuffled.meta["shuffled_order"]]
        assert [t for _, _, t in after] == [before[i][2] for i in order]
        # the lines around the options are untouched
        assert original.prompt.splitlines()[0] == shuffled.prompt.splitlines()[0]
        assert original.prompt.splitlines()[-1] == shuffled.prompt.splitlines()[-1]
        if original.cooperate:
            kinds = {o.label: o.type for o in shuffled.options}
            assert all(kinds[label] == "Cooperate" for label in shuffled.cooperate)
        moved_any |= shuffled.risk_averse != original.risk_averse
    assert moved_any


def test_identity_order_changes_nothing_but_meta():
    original = situations()[0]

    class Identity(random.Random):
        def shuffle(self, x):
            return None

    same = shuffle_options(original, Identity())
    assert same.prompt == original.prompt and same.risk_averse == original.risk_averse
    assert same.options == original.options


def test_shuffle_is_seeded_by_situation_not_position():
    items = situations()
    forward = shuffle_all(items, seed=5)
    backward = shuffle_all(items[::-1], seed=5)[::-1]
    assert [s.prompt for s in forward] == [s.prompt for s in backward]
    assert [s.prompt for s in shuffle_all(items, seed=6)] != [s.prompt for s in forward]


def test_eval_choices_shuffle_flag_scores_the_shuffled_situations(tmp_path, tiny_model):
    items = situations(count=12)
    save_situations(items, tmp_path / "s.json")
    runner = CliRunner()
    args = ["eval-choices", "--model", str(tiny_model), "--situations", str(tmp_path / "s.json"), "--bootstrap", "0"]
    assert runner.invoke(main, args + ["-o", str(tmp_path / "plain.json")]).exit_code == 0
    result = runner.invoke(main, args + ["--shuffle-options", "-o", str(tmp_path / "shuffled.json")])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "shuffled.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("risk_averse")
    expected = {s.situation_id: " ".join(s.risk_averse) for s in shuffle_all(items, seed=0)}
    for row in rows[1:]:
        cells = row.split(",")
        assert cells[column] == expected[cells[header.index("situation_id")]]
    assert json.loads((tmp_path / "shuffled.json").read_text())["config"]["shuffle_options"] is True


def test_rotations_put_every_lottery_on_every_line_once():
    for original in situations("medium", count=15) + situations("high", "cooperate", count=10):
        count = len(original.option_labels)
        texts = [t for _, _, t in find_option_texts(original.prompt)]
        seen = [set() for _ in range(count)]
        for offset in range(count):
            rotated = permute_options(original, rotation(count, offset))
            after = [t for _, _, t in find_option_texts(rotated.prompt)]
            # the lottery of line j is on line j + offset (mod count)
            assert after == [texts[(line - offset) % count] for line in range(count)]
            for line, text in enumerate(after):
                seen[line].add(text)
            lotteries = [(o.label, o.prizes, o.probs) for o in rotated.options]
            assert rotated.risk_averse == best_labels(lotteries, RISK_AVERSE_ALPHA)
            assert rotated.risk_neutral == best_labels(lotteries, 0.0)
            line_of = original.option_labels.index
            assert [line_of(label) for label in rotated.risk_averse] == [
                (line_of(label) + offset) % count for label in original.risk_averse
            ]
        assert all(lines == set(texts) for lines in seen)


def test_shuffle_options_is_permute_options_with_the_drawn_order():
    for original in situations(count=10):
        order = list(range(len(original.option_labels)))
        situation_rng(9, original).shuffle(order)
        assert shuffle_options(original, situation_rng(9, original)) == permute_options(original, order)


def test_a_non_permutation_is_refused_and_unmatched_prompts_are_left_alone():
    original = situations(count=1)[0]
    with pytest.raises(ValueError, match="not a permutation"):
        permute_options(original, [0] * len(original.option_labels))
    unmatched = dataclasses.replace(original, option_labels=list(reversed(original.option_labels)))
    assert not can_move_options(unmatched) and can_move_options(original)
    assert permute_options(unmatched, rotation(len(original.option_labels), 1)) is unmatched
