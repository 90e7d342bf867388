"""Issue 27, parts 4 and 5: runs that end cleanly whatever ends them, and refusals that
leave nothing behind.

- A run killed by a real SIGKILL leaves run.json "running"; the next command that
  opens the folder (report, train --resume, eval-choices of it) records "killed"
  with the newest checkpoint and the last step logged, and says so in one line.
  A run that still holds its lock is never called killed.
- A run whose memory estimate exceeds the memory available stops before anything
  is written, naming the largest micro-batch that fits; --force trains anyway.
- --freeze-layers beyond the model's blocks leaves no folder; a run folder given
  as --model, a read-only file system and a damaged checkpoint get one clear line.
"""

import dataclasses
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys

import pytest

from helpers import SUBPROCESS_ENV, pairs_path, run_cli, tiny_model  # noqa: F401
from riskdpo.core.errors import UserError
from riskdpo.training.checkpoint import checkpoint_dirs
from riskdpo.training.config import TrainConfig
from riskdpo.training.memory import estimate_for_run
from riskdpo.training.memory_fit import available_ram, check_fits
from riskdpo.training.metrics import read_metrics
from training_runs import one_error_line, signal_after_checkpoints, train_args

KILLED = "its run was killed (SIGKILL or out of memory) while training"


@pytest.fixture(scope="module")
def killed_run(tiny_model, pairs_path, tmp_path_factory):  # noqa: F811
    """A run stopped by a real SIGKILL after its first checkpoint (run.json left at "running")."""
    out = tmp_path_factory.mktemp("killed") / "run"
    status, _, newest = signal_after_checkpoints(train_args(pairs_path, out, tiny_model), out, signal.SIGKILL, 1)
    assert status == -signal.SIGKILL
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    return out, newest


@pytest.fixture
def killed_copy(killed_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(killed_run[0], copy)
    return copy


def killed_lines(stderr):
    return [line for line in stderr.splitlines() if KILLED in line]


def test_report_records_a_sigkilled_run_as_killed(killed_copy, killed_run):
    last_step = max(record["step"] for record in read_metrics(killed_copy / "metrics.jsonl") if "step" in record)
    result = run_cli("report", str(killed_copy))
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = killed_lines(result.stderr)
    assert line.startswith(f"{killed_copy}:")
    assert f"last step logged {last_step}, newest checkpoint step-{killed_run[1]}" in line
    run = json.loads((killed_copy / "run.json").read_text())
    assert run["status"] == "killed" and run["last_logged_step"] == last_step
    assert run["checkpoints"] == [path.name for path in checkpoint_dirs(killed_copy)]
    again = run_cli("report", str(killed_copy))  # recorded once: the next command says nothing more
    assert again.returncode == 0 and not killed_lines(again.stderr)


def test_resume_says_the_run_was_killed_and_finishes_it(killed_copy, tiny_model, pairs_path):  # noqa: F811
    result = run_cli(*train_args(pairs_path, killed_copy, tiny_model), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(killed_lines(result.stderr)) == 1
    assert json.loads((killed_copy / "run.json").read_text())["status"] == "finished"


def test_eval_of_the_killed_run_records_it_and_names_the_missing_final_model(killed_copy, tmp_path):
    result = run_cli("eval-choices", "--model", str(killed_copy), "--situations", "data/sample.xlsx",
                     "--sheet", "test_low", "-o", str(tmp_path / "report.json"), "--no-progress")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and KILLED in lines[0], lines
    assert lines[1] == (f"error: --model {killed_copy}: is a riskdpo train run folder, not a model; it holds no "
                        "final-adapter or final-model yet (the run did not finish)")
    assert json.loads((killed_copy / "run.json").read_text())["status"] == "killed"


def test_a_run_that_holds_its_lock_is_not_called_killed(killed_copy):
    handle = os.open(killed_copy, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a live train holds it
        result = run_cli("report", str(killed_copy))
    finally:
        os.close(handle)
    assert result.returncode == 0 and not killed_lines(result.stderr)
    assert json.loads((killed_copy / "run.json").read_text())["status"] == "running"


# ------------------------------------------------------------- memory before the run


def test_check_fits_names_the_largest_batch_that_fits(tiny_model, pairs_path):  # noqa: F811
    config = TrainConfig(dataset=str(pairs_path), output_dir="unused", model=str(tiny_model), batch_size=64,
                         max_length=512, precision="fp32")
    need = {b: estimate_for_run(dataclasses.replace(config, batch_size=b)).total for b in (1, 20, 21, 64)}
    available = need[20] + (need[21] - need[20]) // 2  # 20 fits, 21 does not
    check_fits(config, "fp32", "cpu", available=need[64])  # exactly enough: no refusal
    with pytest.raises(UserError) as refused:
        check_fits(config, "fp32", "cpu", available=available)
    assert "the largest micro-batch that fits is --batch-size 20" in str(refused.value)
    assert "--force" in str(refused.value)
    with pytest.raises(UserError) as refused:  # not even batch 1: gradient checkpointing
        check_fits(config, "fp32", "cpu", available=need[1] - 1)
    checkpointed = estimate_for_run(dataclasses.replace(config, batch_size=1, gradient_checkpointing=True)).total
    assert checkpointed < need[1]
    assert "--gradient-checkpointing --batch-size" in str(refused.value)
    check_fits(dataclasses.replace(config, force=True), "fp32", "cpu", available=1)  # --force: no check


def test_available_ram_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\nMemFree:         1000 kB\nMemAvailable:    2048 kB\n")
    assert available_ram(meminfo) == 2048 * 1024
    assert 0 < available_ram() < 2**50  # this machine's


def test_a_run_that_would_not_fit_stops_before_it_starts(tiny_model, pairs_path, tmp_path):  # noqa: F811
    """batch 4096 x 8192 tokens: the estimate (the packed mask alone is batch·L² bytes, 256 GiB) exceeds this machine."""
    out = tmp_path / "run"
    args = ["train", "--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model),
            "--batch-size", "4096", "--max-length", "8192", "--epochs", "1", "--no-progress"]
    result = run_cli(*args)
    line = one_error_line(result.stderr, "--batch-size 4096: the run needs about", "GiB is RAM available",
                          "the largest micro-batch that fits is --batch-size", "--force")
    assert result.returncode == 2 and not out.exists(), line
    forced = run_cli(*args, "--force")  # 16 pairs: the real micro-batch is far smaller than the estimate's
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


# ------------------------------------------------------------- refusals and messages


def test_freeze_layers_beyond_the_model_leaves_no_folder(tiny_model, pairs_path, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model),
                     "--full", "--freeze-layers", "99", "--no-progress")
    one_error_line(result.stderr, "--freeze-layers 99: the model has only 2 transformer blocks")
    assert result.returncode == 2 and not out.exists()


def test_a_run_folder_given_as_model_names_its_final_model(tiny_model, pairs_path, tmp_path):  # noqa: F811
    run = tmp_path / "finished-run"
    shutil.copytree(tiny_model, run / "final-model")
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    result = run_cli("train", "--dataset", str(pairs_path), "--output-dir", str(tmp_path / "next"), "--model", str(run))
    one_error_line(result.stderr, f"--model {run}: is a riskdpo train run folder, not a model; its model is "
                                  f"{run / 'final-model'}")
    assert not (tmp_path / "next").exists()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to mount a read-only file system")
def test_a_read_only_file_system_is_called_read_only(tiny_model, pairs_path, tmp_path):  # noqa: F811
    mount = tmp_path / "readonly"
    mount.mkdir()
    train = [sys.executable, "-m", "riskdpo.cli", "train", "--dataset", str(pairs_path), "--output-dir",
             str(mount / "run"), "--model", str(tiny_model)]
    script = f"mount -t tmpfs -o ro none {mount} && exec \"$@\""
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *train], capture_output=True, text=True,
                            env={**os.environ, **SUBPROCESS_ENV})
    if "mount" in result.stderr and "error:" not in result.stderr:
        pytest.skip(f"cannot mount here: {result.stderr.strip()[:200]}")
    one_error_line(result.stderr, f"--output-dir {mount / 'run'}: cannot write in {mount} (a read-only file system)")


def test_a_checkpoint_of_other_bytes_is_one_short_line(interrupted_copy, tiny_model, pairs_path):  # noqa: F811
    """Seeded random bytes of the right size: torch.load's weights_only unpickler refuses them with a paragraph."""
    newest = checkpoint_dirs(interrupted_copy)[-1]
    model_file = newest / "pytorch_model.bin"
    model_file.write_bytes(random.Random(0).randbytes(model_file.stat().st_size))
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model), "--resume")
    line = one_error_line(result.stderr, f"{newest}: damaged checkpoint (its bytes are not what torch.save wrote)",
                          "delete it to resume from an earlier one")
    assert "weights_only" not in result.stderr and len(line) < 300
