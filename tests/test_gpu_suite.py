"""The GPU suite (benchmarks/gpu/suite.py) in its dry run: every stage at tiny sizes on the CPU.

The suite's job is to run on a lent GPU machine without a minute lost to
debugging, so its dry run is part of the test suite: every stage runs for real
(riskdpo's training and evaluation, TRL's DPOTrainer, the one-at-a-time
baseline, the kernel probes) on the tiny models, and the test checks what a
GPU run's reader relies on: one printed line per stage, each stage's JSON and
Markdown written with the harness's fields, tables whose rows fit their
columns, the correctness checks all passing, and suite.json/suite.md listing
every stage. A second, seconds-long run checks the time budget: a stage that
does not fit is skipped for time and said so, and nothing is written for it.
The dry run takes minutes on 2 cores (it starts about 18 Python processes, three
of them TRL's), so its tests are marked slow: CI runs them, ``-m "not slow"`` does not.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "gpu" / "suite.py"
STAGES = ["environment", "correctness", "kernels", "train", "memory", "eval", "qlora"]


def run_suite(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SUITE), *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=timeout)


#: Every test but the last two reads the one dry run (several minutes on 2 CPU cores).
slow_dry_run = pytest.mark.slow


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu-suite")
    return out, run_suite("--dry-run", "--out", str(out), "--budget-s", "1500")


@slow_dry_run
def test_dry_run_prints_one_line_per_stage_in_priority_order(dry_run):
    out, done = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.split(":")[0] in STAGES]
    assert [line.split(":")[0] for line in lines] == STAGES
    for line in lines[:-1]:
        assert line.split(": ", 1)[1].startswith("done in "), line
    # QLoRA needs a GPU: the optional stage says why it did not run
    assert lines[-1] == "qlora: skipped QLoRA needs a CUDA GPU (bitsandbytes' 4-bit layers)"


@slow_dry_run
def test_every_finished_stage_writes_its_json_and_markdown(dry_run):
    out, _ = dry_run
    for stage in STAGES[:-1]:
        record = json.loads((out / f"{stage}.json").read_text(encoding="utf-8"))
        markdown = (out / f"{stage}.md").read_text(encoding="utf-8")
        assert record["section"] == stage
        assert record["command"] == f"python benchmarks/gpu/suite.py --dry-run (stage {stage})"
        assert record["machine"]["torch"] and record["date"]
        assert record["tables"], stage
        for table in record["tables"]:
            assert table["rows"], (stage, table["title"])
            assert all(len(row) == len(table["columns"]) for row in table["rows"]), (stage, table["title"])
            assert f"### {table['title']}" in markdown
        for target in record["targets"]:
            assert target["measured"] is not None and math.isfinite(target["measured"]), (stage, target["name"])


@slow_dry_run
def test_correctness_checks_pass_on_the_cpu(dry_run):
    out, _ = dry_run
    record = json.loads((out / "correctness.json").read_text(encoding="utf-8"))
    rows = record["tables"][0]["rows"]
    assert len(rows) >= 15
    assert [row for row in rows if row[1] != "pass"] == []
    assert record["raw"]["failed"] == 0


@slow_dry_run
def test_stage_numbers_are_measured(dry_run):
    out, _ = dry_run
    kernels = json.loads((out / "kernels.json").read_text(encoding="utf-8"))
    ran = [row for row in kernels["tables"][0]["rows"] if row[3] == "yes"]
    assert {row[2] for row in ran} >= {"default", "MATH", "riskdpo load_model"}
    assert all(row[5] == 0 and 0 <= row[6] < 0.05 and row[8] > 0 for row in ran)  # finite, bf16-close, timed
    generation = kernels["tables"][1]["rows"]
    assert all(row[3] == row[1] for row in generation)  # padded batch = one at a time (CPU, fp32 argmax of bf16 model)
    train = json.loads((out / "train.json").read_text(encoding="utf-8"))
    configs = [(r["completions"], r["finetune"]) for r in train["raw"]["results"]]
    assert configs == [("label", "lora"), ("cot", "lora"), ("label", "full")]
    for result in train["raw"]["results"]:
        assert result["riskdpo"]["loss_first"] == pytest.approx(math.log(2), abs=1e-3)
        assert result["trl"]["loss_first"] == pytest.approx(math.log(2), abs=1e-3)
        assert result["tokens"]["trl_model"] > result["tokens"]["riskdpo_model"]
    memory = json.loads((out / "memory.json").read_text(encoding="utf-8"))
    assert [row[0] for row in memory["tables"][0]["rows"]] == ["lora", "lora-checkpointing", "full"] * 2
    assert all(row[5] > 0 for row in memory["tables"][0]["rows"])  # estimate in GiB
    evaluation = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert evaluation["raw"]["baseline"]["situations"] == 2 and evaluation["raw"]["riskdpo"]["logprob"]["runs"][-1]["situations"] == 4


@slow_dry_run
def test_suite_summary_lists_every_stage(dry_run):
    out, _ = dry_run
    summary = json.loads((out / "suite.json").read_text(encoding="utf-8"))
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert summary["dry_run"] is True and summary["device"] == "cpu"
    markdown = (out / "suite.md").read_text(encoding="utf-8")
    for stage in STAGES:
        assert f"| {stage} | " in markdown
    assert "## GPU suite: correctness on CUDA" in markdown  # finished stages' sections are joined in


def test_a_stage_that_does_not_fit_the_budget_is_skipped_for_time(tmp_path):
    done = run_suite("--dry-run", "--out", str(tmp_path), "--budget-s", "1", "--only", "correctness,train", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[:2] == [
        "correctness: skipped for time: 1 s left, needs 30 s",
        "train: skipped for time: 1 s left, needs 40 s",
    ]
    assert not (tmp_path / "correctness.json").exists()
    summary = json.loads((tmp_path / "suite.json").read_text(encoding="utf-8"))
    assert [s["status"] for s in summary["stages"]] == ["skipped", "skipped"]


def test_time_box_rule():
    sys.path.insert(0, str(SUITE.parent))
    from sizes import STAGES as stages
    from suite import time_box

    train = next(stage for stage in stages if stage.name == "train")
    assert time_box(train, 1000.0, dry_run=False) == 2 * train.estimate_s
    assert time_box(train, train.estimate_s + 1, dry_run=False) == train.estimate_s + 1
    assert time_box(train, train.estimate_s - 1, dry_run=False) is None
    assert time_box(train, 1000.0, dry_run=True) == 1000.0
