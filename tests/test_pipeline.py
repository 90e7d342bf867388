"""The pipeline end to end with real files and the tiny model.

convert (a real .xlsx) -> make-pairs -> train -> eval-choices, through the
library; and `riskdpo demo --model tiny` through the CLI, as a user runs it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from riskdpo.cli import main
from riskdpo.data.convert import read_situations
from riskdpo.evaluation.evaluate import EvalOptions, evaluate_choices
from riskdpo.core.fileio import write_jsonl
from riskdpo.pairs.build import select_pairs
from riskdpo.models.tiny import build_tiny_model
from riskdpo.training.config import TrainConfig
from riskdpo.training.run import train

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.xlsx"


@pytest.mark.parametrize("seed", [0, 2])
def test_trained_model_picks_risk_averse_more_often_on_its_training_situations(tmp_path, seed):
    situations = read_situations(SAMPLE, sheet="train").situations
    pairs = select_pairs(situations, sample_size=24, seed=seed)
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    trained_on = {pair["situation_id"] for pair in pairs}
    used = [s for s in situations if s.situation_id in trained_on]
    base = str(build_tiny_model(tmp_path / "tiny", [s.prompt for s in situations], seed=seed))
    config = TrainConfig(dataset=str(tmp_path / "pairs.jsonl"), output_dir=str(tmp_path / "run"), model=base,
                         epochs=8, lr=5e-3, batch_size=4, seed=seed, progress=False)
    tuned = str(train(config))

    report = evaluate_choices([base, tuned], used, options=EvalOptions(bootstrap=0)).report
    before, after = report["models"]
    assert before["n"] == after["n"] == len(used) == 24
    assert after["rates"]["risk_averse"] > before["rates"]["risk_averse"]
    assert after["mean_risk_averse_prob"] > before["mean_risk_averse_prob"]
    comparison = report["comparisons"][0]
    assert comparison["risk_averse_diff"] == pytest.approx(after["rates"]["risk_averse"] - before["rates"]["risk_averse"])


def test_demo_with_the_tiny_model(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--model", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output

    report = json.loads((out / "eval.json").read_text())
    base, tuned = report["models"]
    assert base["model"] == str(out / "tiny-model") and tuned["model"] == str(out / "run" / "final-model")
    assert base["n"] == tuned["n"] == 40
    for summary in (base, tuned):
        assert sum(summary["rates"].values()) == pytest.approx(1.0)
    # the base model is scored once, before training, and the same scores reappear in the comparison
    before = json.loads((out / "eval_base.json").read_text())["models"][0]
    assert before["counts"] == base["counts"]
    # held-out situations come from the test sheets only, training pairs from the train sheet only
    held_out = json.loads((out / "held_out.json").read_text())
    assert {s["sheet"] for s in held_out} <= {"test_low", "test_medium", "test_high", "test_astronomical", "test_cooperate"}
    pair_sheets = {json.loads(line)["sheet"] for line in (out / "pairs.jsonl").read_text().splitlines()}
    assert pair_sheets == {"train"}
    # the printed before/after lines are the report's numbers
    after_line = re.search(r"after \(tuned\):\s+([0-9.]+) \[([0-9.]+), ([0-9.]+)\]", result.output)
    assert after_line, result.output
    assert float(after_line.group(1)) == pytest.approx(tuned["rates"]["risk_averse"], abs=5e-4)
    assert float(after_line.group(2)) == pytest.approx(tuned["intervals"]["risk_averse"][0], abs=5e-4)
    difference = re.search(r"difference:\s+([+-][0-9.]+)", result.output)
    assert float(difference.group(1)) == pytest.approx(report["comparisons"][0]["risk_averse_diff"], abs=5e-4)
    assert (out / "run" / "final-model" / "config.json").is_file()
    assert (out / "eval.png").stat().st_size > 0


def test_demo_without_held_out_sheets_is_one_line_error(tmp_path):
    runner = CliRunner()
    only_train = tmp_path / "train.xlsx"
    assert runner.invoke(main, ["generate", "-o", str(only_train), "--sheet", "train", "--situations", "30"]).exit_code == 0
    result = runner.invoke(main, ["demo", "--model", "tiny", "--data", str(only_train), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "no held-out sheets" in result.output and len(result.output.strip().splitlines())
    assert result.output.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.slow
def test_short_demo_on_the_bundled_smollm2(tmp_path):
    out = tmp_path / "demo"
    # 16 pairs at batch 8: two steps, so the second one (after the warm-up step at lr 0) changes the model
    args = ["demo", "--out", str(out), "--train-situations", "16", "--held-out", "12", "--epochs", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    base, tuned = report["models"]
    assert base["n"] == tuned["n"] == 12
    # a real model with a chat template: prompts were formatted with it, and the adapter changed the model
    assert "<|im_start|>" in (out / "run" / "final-model" / "chat_template.jinja").read_text()
    assert base["prompt_format"]["chat_template"] is True
    assert base["mean_risk_averse_prob"] != tuned["mean_risk_averse_prob"]
    metrics = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(math.isfinite(line["loss"]) for line in metrics)  # finite, logged
