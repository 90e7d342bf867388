"""Shared by the run-directory tests: real `riskdpo train` processes, a run stopped
by a real signal, and a digest of a folder to prove a refused command changed nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from helpers import SUBPROCESS_ENV, sigint_at_default
from riskdpo.training.checkpoint import checkpoint_dirs
from riskdpo.training.metrics import TIMING_KEYS, read_metrics

#: Checkpoints every 4 of 48 steps (16 pairs, batch 2, 6 epochs), the newest two kept.
OPTIONS = {"epochs": 6, "batch_size": 2, "lr": 5e-3, "save_every": 4, "log_every": 3, "eval_every": 5,
           "keep_checkpoints": 2, "max_length": 128, "seed": 3}


def cli_options(**options) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]


def train_args(pairs: Path, out: Path, model: Path, *extra: str, **options) -> list[str]:
    """`riskdpo train` arguments for the tiny model on `pairs` (validated on the same pairs)."""
    return ["train", "--dataset", str(pairs), "--val", str(pairs), "--output-dir", str(out), "--model", str(model),
            "--no-progress", *cli_options(**{**OPTIONS, **options}), *extra]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "riskdpo.cli", *args], env={**os.environ, **SUBPROCESS_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_at_default)


def signal_after_checkpoints(args: list[str], out: Path, number: int, checkpoints: int = 2) -> tuple[int, str, int]:
    """Start a run and send it signal `number` once it holds `checkpoints` checkpoints and
    has logged a step past the newest; return (exit status, stderr, newest checkpoint's step)."""
    process = start(args)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = checkpoint_dirs(out)
        logged = [r.get("step", 0) for r in read_metrics(out / "metrics.jsonl")] if len(found) >= checkpoints else []
        newest = int(found[-1].name.split("-")[1]) if found else None
        if logged and max(logged) > newest:
            process.send_signal(number)
            _, stderr = process.communicate(timeout=120)
            return process.returncode, stderr, newest
        assert process.poll() is None, f"the run ended before the signal: {process.stderr.read()[-2000:]}"
        time.sleep(0.002)
    process.kill()
    raise AssertionError(f"no {checkpoints} checkpoints within 240 s")


def records_through(out: Path, step: int) -> list[dict]:
    """The metrics records of `out` up to `step`, timings included."""
    return [record for record in read_metrics(out / "metrics.jsonl") if record.get("step", 0) <= step]


def assert_resumed_from(out: Path, step: int, before: list[dict]) -> None:
    """A resumed run went on from checkpoint `step`: run.json names it, and the metrics records up
    to it are those the interrupted run wrote (`before`), timings included; a run that silently
    started over would have logged them again with timings of its own (training is deterministic,
    so the final weights alone cannot tell)."""
    assert json.loads((out / "run.json").read_text())["resumed_from"] == str(out / "checkpoints" / f"step-{step}")
    assert any(record.keys() & set(TIMING_KEYS) for record in before)  # something a rerun would change
    assert records_through(out, step) == before


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` by relative path (folders as entries too)."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        digest[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return digest


def one_error_line(stderr: str, *fragments: str) -> str:
    """The single `error:` line of a refused command, which must name every fragment."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]

