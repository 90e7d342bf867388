"""SIGTERM stops a run as Ctrl-C does: one line, exit status 128 + 15, the
checkpoints kept, run.json saying "interrupted" (never "running" forever), and
`--resume` ends exactly like a run never stopped."""

import json
import signal

import torch

from helpers import final_weights, pairs_path, read_jsonl, run_cli, tiny_model  # noqa: F401
from riskdpo.training.checkpoint import checkpoint_dirs
from riskdpo.training.metrics import without_timing
from training_runs import assert_resumed_from, records_through, signal_after_checkpoints, train_args


def test_sigterm_keeps_the_checkpoints_and_marks_the_run_interrupted(terminated_run):
    out, status, stderr, newest = terminated_run
    assert status == 128 + signal.SIGTERM
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"interrupted by SIGTERM: continue from {out / 'checkpoints' / f'step-{newest}'} with --resume"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["error"] == "stopped by SIGTERM"
    assert run["checkpoints"][-1] == f"step-{newest}" and checkpoint_dirs(out)[-1].name == f"step-{newest}"
    assert not (out / "final-model").exists()


def test_ctrl_c_is_handled_the_same_way(tiny_model, pairs_path, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    status, stderr, newest = signal_after_checkpoints(train_args(pairs_path, out, tiny_model), out, signal.SIGINT, 1)
    assert status == 128 + signal.SIGINT and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted by SIGINT: continue from")
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["error"] == "stopped by SIGINT"


def test_resume_after_sigterm_matches_an_uninterrupted_run(interrupted_copy, terminated_run, uninterrupted_run, tiny_model, pairs_path):  # noqa: F811
    newest = terminated_run[3]
    before = records_through(interrupted_copy, newest)
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_resumed_from(interrupted_copy, newest, before)
    resumed, expected = final_weights(interrupted_copy), final_weights(uninterrupted_run)
    assert all(torch.equal(resumed[key], expected[key]) for key in expected)
    assert [without_timing(r) for r in read_jsonl(interrupted_copy / "metrics.jsonl")] == \
        [without_timing(r) for r in read_jsonl(uninterrupted_run / "metrics.jsonl")]
    assert json.loads((interrupted_copy / "run.json").read_text())["status"] == "finished"
