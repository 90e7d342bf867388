"""Two runs, one folder: a run holds a lock on its folder while it writes, so a
second `riskdpo train` into it stops with one line; a finished run is replaced
only with --overwrite, and a failed new run never touches it."""

import json
import shutil
import signal
import time

import pytest

from helpers import pairs_path, read_jsonl, run_cli, tiny_model  # noqa: F401
from training_runs import one_error_line, start, train_args, tree_digest


def test_a_second_run_into_a_folder_being_written_stops_with_one_line(tiny_model, pairs_path, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    first = start(train_args(pairs_path, out, tiny_model, epochs=1000, save_every=0, eval_every=0, log_every=1))
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or not read_jsonl(out / "metrics.jsonl"):
        assert first.poll() is None, first.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = run_cli(*train_args(pairs_path, out, tiny_model, seed=99))
    assert second.returncode == 2
    one_error_line(second.stderr, f"--output-dir {out}: another riskdpo train is writing to it")
    assert first.poll() is None  # the first run went on
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["seed"] == 3 and run["status"] == "interrupted"  # the first run's record, not the second's
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, len(steps) + 1))  # one run's lines, none restarted


@pytest.fixture
def finished_copy(uninterrupted_run, tmp_path):
    copy = tmp_path / "finished"
    shutil.copytree(uninterrupted_run, copy)
    return copy


@pytest.mark.parametrize("extra", [[], ["--resume"]], ids=["new run", "resume"])
def test_a_finished_run_is_not_replaced_without_overwrite(finished_copy, tiny_model, pairs_path, extra):  # noqa: F811
    before = tree_digest(finished_copy)
    result = run_cli(*train_args(pairs_path, finished_copy, tiny_model, seed=5), *extra)
    assert result.returncode == 2
    one_error_line(result.stderr, f"--output-dir {finished_copy}: holds a finished run; pass --overwrite")
    assert tree_digest(finished_copy) == before


def test_a_failing_run_with_overwrite_leaves_the_finished_run_whole(finished_copy, tiny_model, pairs_path):  # noqa: F811
    before = tree_digest(finished_copy)
    result = run_cli(*train_args(pairs_path, finished_copy, tiny_model), "--overwrite", "--lora-targets", "no_such_proj")
    assert result.returncode == 2
    one_error_line(result.stderr, "--lora-targets no_such_proj")
    assert tree_digest(finished_copy) == before


def test_overwrite_replaces_a_finished_run(finished_copy, tiny_model, pairs_path):  # noqa: F811
    result = run_cli(*train_args(pairs_path, finished_copy, tiny_model, epochs=1, seed=5), "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((finished_copy / "run.json").read_text())
    assert run["status"] == "finished" and run["config"]["seed"] == 5 and run["steps"] == 8
    assert max(r["step"] for r in read_jsonl(finished_copy / "metrics.jsonl")) == 8  # no line of the old 48 steps
    assert sorted(p.name for p in (finished_copy / "checkpoints").iterdir()) == ["step-4", "step-8"]
