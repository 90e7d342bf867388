"""A run killed with SIGKILL after a checkpoint and resumed ends exactly like an
uninterrupted run: same final weights, same metrics.jsonl, no step logged twice,
and its W&B records continue the interrupted W&B run."""

import os
import signal
import subprocess
import sys
import time

import torch

from helpers import SUBPROCESS_ENV, final_weights, pairs_path, read_jsonl, run_cli, tiny_model  # noqa: F401
from riskdpo.training.checkpoint import checkpoint_dirs
from riskdpo.core.fileio import read_json
from riskdpo.training.metrics import read_metrics, without_timing
from riskdpo.training.config import TrainConfig
from riskdpo.training.run import train
from training_runs import assert_resumed_from, records_through

# LoRA dropout on (0.05, not the default), so the random state must be restored too; checkpoints
# every 4 steps, metrics every 3, so a checkpoint falls inside a logging window.
OPTIONS = {"epochs": 6, "batch_size": 2, "lr": 5e-3, "lora_dropout": 0.05, "save_every": 4, "log_every": 3, "eval_every": 5,
           "keep_checkpoints": 2, "max_length": 128, "seed": 3}


def cli_options(**options) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]


def train_args(pairs_path, model, out) -> list[str]:
    """`riskdpo train` with OPTIONS and W&B (offline), on `pairs_path` for training and validation, into `out`."""
    return ["train", "--dataset", str(pairs_path), "--val", str(pairs_path), "--output-dir", str(out), "--model", str(model),
            "--no-progress", "--wandb-project", "riskdpo-tests", *cli_options(**OPTIONS)]


def kill_after_checkpoint(args: list[str], out) -> int:
    """Start a run, SIGKILL it once it has logged a step past its newest checkpoint; return that checkpoint's step."""
    process = subprocess.Popen([sys.executable, "-m", "riskdpo.cli", *args], env={**os.environ, **SUBPROCESS_ENV},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        checkpoints = checkpoint_dirs(out)
        logged = [r.get("step", 0) for r in read_metrics(out / "metrics.jsonl")] if checkpoints else []
        newest = int(checkpoints[-1].name.split("-")[1]) if checkpoints else None
        if newest is not None and max(logged, default=0) > newest:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return newest
        assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()[-2000:]}"
        time.sleep(0.002)
    process.kill()
    raise AssertionError("no checkpoint within 240 s")


def test_resume_after_sigkill_matches_an_uninterrupted_run(tiny_model, pairs_path, tmp_path):  # noqa: F811
    interrupted = tmp_path / "interrupted"
    args = train_args(pairs_path, tiny_model, interrupted)
    killed_at = kill_after_checkpoint(args, interrupted)
    wandb_run = read_json(interrupted / "run.json")["wandb_run_id"]
    assert not (interrupted / "final-model").exists()
    logged_before = [r["step"] for r in read_metrics(interrupted / "metrics.jsonl")]
    assert max(logged_before) > killed_at  # lines past the checkpoint, which the resumed run must replace
    reference_written = (interrupted / "reference-logps.pt").stat().st_mtime_ns
    before = records_through(interrupted, killed_at)

    result = run_cli(*args, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_resumed_from(interrupted, killed_at, before)

    uninterrupted = tmp_path / "uninterrupted"
    train(TrainConfig(dataset=str(pairs_path), val=str(pairs_path), output_dir=str(uninterrupted), model=str(tiny_model),
                      progress=False, **OPTIONS))

    resumed_weights, expected_weights = final_weights(interrupted), final_weights(uninterrupted)
    assert all(torch.equal(resumed_weights[key], expected_weights[key]) for key in expected_weights)
    resumed = [without_timing(r) for r in read_jsonl(interrupted / "metrics.jsonl")]
    expected = [without_timing(r) for r in read_jsonl(uninterrupted / "metrics.jsonl")]
    assert resumed == expected
    steps = [(r["step"], "val/loss" in r) for r in resumed]
    assert len(steps) == len(set(steps))  # no step logged twice
    assert (interrupted / "reference-logps.pt").stat().st_mtime_ns == reference_written  # reused, not recomputed
    assert [p.name for p in checkpoint_dirs(interrupted)] == ["step-44", "step-48"]  # the newest two of 48 steps
    assert not list((interrupted / "checkpoints").glob(".*"))
    assert read_json(interrupted / "run.json")["wandb_run_id"] == wandb_run
    parts = sorted((interrupted / "wandb").glob(f"offline-run-*-{wandb_run}"))
    assert len(parts) == 2 and all(list(part.glob("run-*.wandb")) for part in parts)


def test_a_resume_an_inherited_wandb_service_still_holds_is_refused_in_one_line(tiny_model, pairs_path, tmp_path, monkeypatch):  # noqa: F811
    """A notebook's in-process wandb run leaves WANDB_SERVICE set; a `riskdpo train` it starts joins that
    service, and once that run is SIGKILLed the service still holds its run id. Resuming it from the same
    notebook is refused in one line that names the way out, the checkpoints untouched and run.json saying
    "killed" (what every resume first records of a SIGKILLed run; metrics.jsonl is cut back to the checkpoint,
    as every resume does); unset, the resume works. The notebook is a process of its own, which owns its
    service until it ends (this process may already hold a wandb service of an earlier test)."""
    notebook = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, wandb; wandb.init(project='riskdpo-tests', dir=sys.argv[1], mode='offline')"
         ".finish(); print(os.environ['WANDB_SERVICE'], flush=True); sys.stdin.read()", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **SUBPROCESS_ENV})
    try:
        service = notebook.stdout.readline().strip()
        assert service, "the notebook process started no wandb service"
        monkeypatch.setenv("WANDB_SERVICE", service)
        out = tmp_path / "run"
        args = train_args(pairs_path, tiny_model, out)
        kill_after_checkpoint(args, out)
        wandb_run = read_json(out / "run.json")["wandb_run_id"]
        checkpoints = [path.name for path in checkpoint_dirs(out)]

        refused = run_cli(*args, "--resume")
        assert refused.returncode == 2
        assert "Traceback" not in refused.stderr
        assert refused.stderr.strip().splitlines()[-1:] == [
            f"error: --resume: W&B run {wandb_run} is still held by the wandb service this process inherited "
            f"(WANDB_SERVICE={service}), which outlived the killed run; unset WANDB_SERVICE "
            "(or restart the notebook kernel that set it) and resume again"]
        assert read_json(out / "run.json")["status"] == "killed"
        assert [path.name for path in checkpoint_dirs(out)] == checkpoints

        monkeypatch.delenv("WANDB_SERVICE")
        resumed = run_cli(*args, "--resume")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert read_json(out / "run.json")["status"] == "finished"
        assert read_json(out / "run.json")["wandb_run_id"] == wandb_run
    finally:
        notebook.stdin.close()  # the notebook ends, and its service with it
        notebook.wait(timeout=60)
