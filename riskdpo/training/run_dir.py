"""The run directory's contract: one writer at a time, finished runs kept, resumes
that continue the same run, and a status that is never left at "running".

OUTPUT_DIR holds final-model/, final-adapter/ (LoRA), metrics.jsonl, run.json, checkpoints/,
reference-logps.pt and (with --sft-epochs) sft-model/. The rules:

- **Where output may go.** The path must be a folder (or not exist yet) in a
  place that can be written; otherwise one error before anything is written.
- **One writer.** While a run writes, it holds an exclusive `flock` on the
  folder itself (no lock file to leave behind; the kernel drops the lock when
  the process dies, even by SIGKILL). A second run into the same folder stops
  at once with one line.
- **Finished runs are kept.** A folder whose run.json says "finished" (or that
  holds a final-model) is replaced only with `--overwrite`, which removes the
  old run's files just before the new run writes its own, so a new run that
  fails on bad options or data touches nothing.
- **Resume continues the same run.** run.json records the settings that can
  change the result (`result_settings`, with the pair files by content hash)
  and their fingerprint; `--resume` with any of them different is refused with
  one line naming them. Only `RESULT_FREE_SETTINGS` may differ.
- **Status.** run.json says "running" while a run writes, then "finished",
  "failed" (with the error) or "interrupted" (Ctrl-C or SIGTERM; the checkpoints
  are kept for --resume). A process killed outright (SIGKILL, the kernel's
  out-of-memory killer) cannot write anything, so the next command that opens
  the folder (train, --resume, report, eval-choices of its model) and finds it
  "running" with the lock free records "killed", with the newest checkpoint and
  the last step logged (`record_if_killed`), and says so in one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import read_json, write_json
from riskdpo.training.checkpoint import checkpoint_dirs, fingerprint
from riskdpo.training.config import TrainConfig, result_settings

#: What a run writes into OUTPUT_DIR; --overwrite removes exactly these.
RUN_OUTPUTS = ("final-model", "final-adapter", "sft-model", "checkpoints", "metrics.jsonl", "run.json", "reference-logps.pt", "wandb")


def check_output_dir(output: Path) -> None:
    """Refuse an output path that is a file, sits under a file, or lies where nothing can be written."""
    if output.exists() and not output.is_dir():
        raise UserError(f"--output-dir {output}: is a file, not a folder")
    existing = output
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--output-dir {output}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "a read-only file system" if _read_only(existing) else "permission denied"
        raise UserError(f"--output-dir {output}: cannot write in {existing} ({reason})")


def _read_only(folder: Path) -> bool:
    """True when `folder` lies on a file system mounted read-only (where access() also says no)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@contextlib.contextmanager
def locked_run_dir(output: Path) -> Iterator[None]:
    """Create `output` if needed and hold an exclusive lock on it; a folder this
    made is removed again when the body fails before writing anything into it."""
    made = []
    for folder in reversed([output, *output.parents]):
        if not folder.exists():
            try:
                folder.mkdir()
            except OSError as error:
                _remove_empty(made)
                raise UserError(f"--output-dir {output}: cannot create {folder} ({os.strerror(error.errno)})") from None
            made.append(folder)
    handle = os.open(output, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise UserError(f"--output-dir {output}: another riskdpo train is writing to it; wait for it to end "
                            "or choose another --output-dir") from None
        yield
    except BaseException:
        _remove_empty(made)
        raise
    finally:
        os.close(handle)  # releases the lock


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders this run made, innermost first, where they are still empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def previous_run(output: Path) -> dict[str, Any] | None:
    """The run.json of the run that wrote `output` before, or None (no run.json, or unreadable)."""
    try:
        return read_json(output / "run.json", expect=dict)
    except UserError:
        return None


def record_if_killed(output: str | Path, *, locked: bool = False) -> str | None:
    """Record a run that was killed without a word (SIGKILL, out of memory) as "killed".

    A run.json saying "running" while no process holds the folder's lock was
    left by a process that died before it could write its status. It becomes
    "killed", with `checkpoints` (the newest last) and `last_logged_step`
    (from metrics.jsonl). Returns the one line to tell the user, or None when
    the folder holds no such run (or its run is still writing). `locked`: the
    caller holds the lock already (train).
    """
    from riskdpo.training.metrics import read_metrics

    output = Path(output)
    previous = previous_run(output)
    if not previous or previous.get("status") != "running":
        return None
    with contextlib.ExitStack() as stack:
        if not locked:
            try:
                handle = os.open(output, os.O_RDONLY)
            except OSError:
                return None
            stack.callback(os.close, handle)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return None  # a live process holds it: the run is running
        checkpoints = [path.name for path in checkpoint_dirs(output)]
        steps = [record["step"] for record in read_metrics(output / "metrics.jsonl")
                 if isinstance(record.get("step"), int)]
        last_step = max(steps, default=None)
        try:
            write_json(output / "run.json", {
                **previous, "status": "killed", "checkpoints": checkpoints, "last_logged_step": last_step,
                "error": "the process ended without recording its status (killed by SIGKILL or the out-of-memory "
                         "killer)"})
        except (UserError, OSError):
            return None  # a folder this command cannot write: leave it as it is
    newest = f"newest checkpoint {checkpoints[-1]}" if checkpoints else "no checkpoint"
    logged = f"last step logged {last_step}" if last_step is not None else "no step logged"
    return (f"{output}: its run was killed (SIGKILL or out of memory) while training; {logged}, {newest}; "
            "run.json now says \"killed\"")


def check_previous_run(output: Path, config: TrainConfig) -> None:
    """Refuse to write over a finished run (without --overwrite) or an interrupted one (without --resume)."""
    if config.overwrite:
        return
    previous = previous_run(output) or {}
    if previous.get("status") == "finished" or (output / "final-model").exists():
        raise UserError(f"--output-dir {output}: holds a finished run; pass --overwrite to replace it "
                        "or choose another --output-dir")
    if checkpoint_dirs(output) and not config.resume:
        raise UserError(f"{output} holds checkpoints of an earlier run; pass --resume to continue it, --overwrite to "
                        "start over, or choose another --output-dir")


def remove_previous_run(output: Path) -> None:
    """Delete what an earlier run wrote (--overwrite), just before the new run writes."""
    for name in RUN_OUTPUTS:
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def settings_record(config: dict[str, Any], dataset_sha256: str, val_sha256: str | None) -> dict[str, Any]:
    """The settings that can change a run's result, pair files by content (`config`: a
    TrainConfig as a dict; keys an older run.json lacks count as their defaults)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    settings = result_settings(TrainConfig(**{**defaults, **{k: v for k, v in config.items() if k in defaults}}))
    return {**settings, "dataset": dataset_sha256, "val": val_sha256}


def settings_fingerprint(settings: dict[str, Any]) -> str:
    return fingerprint(settings)


def check_resume_settings(output: Path, settings: dict[str, Any]) -> None:
    """Refuse --resume when the interrupted run was made with other result-changing settings."""
    previous = previous_run(output)
    if previous is None or not isinstance(previous.get("config"), dict) or not isinstance(previous.get("dataset"), dict):
        raise UserError(f"--resume: {output / 'run.json'} is missing or unreadable, so the settings of the "
                        "interrupted run cannot be checked; start over with --overwrite")
    old = settings_record(previous["config"], previous["dataset"].get("sha256"), (previous.get("val") or {}).get("sha256"))
    differing = [key for key in settings if old.get(key) != settings[key]]
    if differing:
        described = ", ".join(_describe(key, old.get(key), settings[key]) for key in differing)
        raise UserError(f"--resume: {output} was trained with other settings ({described}); resume with the "
                        "run's settings, or start over with --overwrite")


def _describe(key: str, before: Any, now: Any) -> str:
    if key in ("dataset", "val"):
        short = lambda digest: digest[:12] if digest else "none"  # noqa: E731
        return f"--{key} content sha256 {short(before)} now {short(now)}"
    return f"--{key.replace('_', '-')} {before} now {now}"


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGTERM), handled like Ctrl-C."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into `Interrupted` (a KeyboardInterrupt) while the body runs, so a
    terminated run ends like one stopped with Ctrl-C: status "interrupted", checkpoints kept."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def interrupt(number: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM during the clean-up ends the process
        raise Interrupted(number)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
