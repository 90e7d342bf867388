"""Checkpoints and cached reference log-probs: what a run needs to continue.

`OUTPUT_DIR/checkpoints/step-N/` holds accelerate's state after N optimizer
steps: the trainable weights (the adapter, or the unfrozen part of the model),
optimizer, learning-rate schedule and the random state of every process, plus
`progress.json` (epoch and step within it, which fix the data position since
the batch order of an epoch is a pure function of the seed). All processes write
into `.step-N.tmp`, which is renamed to `step-N` once complete, so a crash never
leaves half a checkpoint to resume from. Each checkpoint ends with
`manifest.json` (every file's size), so a checkpoint damaged later (a file
truncated or deleted, the folder emptied) is recognised before it is loaded, and
a resumed run falls back to the newest intact one (`newest_intact`).

`OUTPUT_DIR/reference-logps.pt` holds log π_ref of every completion, computed
once before training and reused on resume; it records a fingerprint of the
reference model and the token ids, so a stale cache is never used, and a cache
that cannot be read is reported and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_path, write_json

_STEP_DIR = re.compile(r"^step-(\d+)$")
MANIFEST = "manifest.json"


@dataclass
class Progress:
    """Where training stands: optimizer steps done, overall and in the current epoch,
    and the statistics not yet logged (so a resumed run logs the same averages)."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    window: dict[str, float] = field(default_factory=dict)  # sums since the last metrics line


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in root.iterdir() if (m := _STEP_DIR.match(path.name)) and path.is_dir()]
    return [path for _, path in sorted(found)]


def save_trainable_only(accelerator: Any) -> None:
    """Make `accelerator.save_state` keep only parameters that train.

    Frozen weights (the base under LoRA, frozen blocks) never change, so a
    checkpoint of phi-2 with LoRA holds megabytes instead of gigabytes. Loading
    then needs `strict=False` (see `load_checkpoint`).
    """

    def drop_frozen(models: list, weights: list[dict], _directory: str) -> None:
        for model, state in zip(models, weights):
            trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
            for key in [key for key in state if key not in trainable]:
                del state[key]

    accelerator.register_save_state_pre_hook(drop_frozen)


def save_checkpoint(accelerator: Any, output_dir: str | Path, progress: Progress, keep: int) -> Path:
    """Write `checkpoints/step-N` (all processes take part); keep the newest `keep`."""
    root = Path(output_dir) / "checkpoints"
    final = root / f"step-{progress.step}"
    partial = root / f".step-{progress.step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(partial / "progress.json", asdict(progress))
        write_json(partial / MANIFEST, {"files": _file_sizes(partial)})
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def _file_sizes(directory: Path) -> dict[str, int]:
    """Size in bytes of every file under `directory`, by path relative to it."""
    return {path.relative_to(directory).as_posix(): path.stat().st_size
            for path in sorted(directory.rglob("*")) if path.is_file() and path.name != MANIFEST}


def checkpoint_damage(directory: str | Path) -> str | None:
    """What is wrong with a checkpoint folder (which file is missing, truncated or unreadable), or None.

    Checkpoints written before manifests existed are checked for their progress file only.
    """
    folder = Path(directory)
    if not any(folder.iterdir()):
        return f"{folder}: the checkpoint folder is empty"
    expected = None
    if (folder / MANIFEST).exists():
        try:
            expected = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
        except (ValueError, KeyError, TypeError):
            return f"{folder / MANIFEST}: damaged (not the JSON a checkpoint writes)"
    for name, size in (expected or {}).items():
        path = folder / name
        if not path.is_file():
            return f"{path}: missing from the checkpoint"
        if path.stat().st_size != size:
            return f"{path}: damaged ({path.stat().st_size} bytes, written with {size})"
    try:
        Progress(**json.loads((folder / "progress.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        return f"{folder / 'progress.json'}: missing from the checkpoint"
    except (ValueError, TypeError):
        return f"{folder / 'progress.json'}: damaged (not the JSON a checkpoint writes)"
    return None


def newest_intact(output_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that is intact, and what is wrong with each newer one."""
    damage = []
    for directory in reversed(checkpoint_dirs(output_dir)):
        problem = checkpoint_damage(directory)
        if problem is None:
            return directory, damage
        damage.append(problem)
    return None, damage


def load_checkpoint(accelerator: Any, directory: str | Path) -> Progress:
    """Restore weights, optimizer, schedule and random state; return the progress.

    Raises `UserError` naming the checkpoint when its files cannot be loaded
    although their sizes are right (overwritten, not truncated).
    """
    try:
        accelerator.load_state(str(directory), strict=False)
    except Exception as error:  # whatever torch.load / pickle / safetensors raise for bytes that are not a checkpoint
        raise UserError(f"{directory}: damaged checkpoint ({load_failure(error)}); delete it to resume from an "
                        "earlier one") from None
    return Progress(**json.loads((Path(directory) / "progress.json").read_text(encoding="utf-8")))


def load_failure(error: BaseException) -> str:
    """Why torch.load failed, in a few words: its first sentence, not the paragraphs it
    prints (the weights_only advice is about trusting a file, not about a damaged one)."""
    text = " ".join(str(error).split())
    if text.startswith("Weights only load failed"):
        return "its bytes are not what torch.save wrote"
    sentence = text.split(". ")[0].rstrip(".") if text else type(error).__name__
    return sentence if len(sentence) <= 120 else sentence[:117] + "..."


def remove_partial_checkpoints(output_dir: str | Path) -> None:
    """Delete `.step-N.tmp` folders a crash left behind."""
    root = Path(output_dir) / "checkpoints"
    for partial in root.glob(".step-*.tmp") if root.is_dir() else []:
        shutil.rmtree(partial)


def fingerprint(*parts: Any) -> str:
    """sha256 of the JSON of `parts`: identifies what a cache was computed from."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


class DamagedCache(Exception):
    """A cache file that exists but cannot be read; the message names it."""


def load_reference(path: str | Path, expected: str) -> dict[str, torch.Tensor] | None:
    """Cached reference log-probs, or None when absent or computed from something else.

    Raises `DamagedCache` when the file cannot be read as a cache (truncated, overwritten).
    """
    source = Path(path)
    if not source.exists():
        return None
    try:
        cached = torch.load(source, map_location="cpu")
    except Exception as error:  # torch.load raises many types for bytes that are not what torch.save wrote
        raise DamagedCache(f"{source}: damaged ({load_failure(error)})") from None
    logps = cached.get("logps") if isinstance(cached, dict) else None
    if not (isinstance(logps, dict) and all(isinstance(value, torch.Tensor) for value in logps.values())):
        raise DamagedCache(f"{source}: damaged (not a cache of reference log-probs)")
    return logps if cached.get("fingerprint") == expected else None


def save_reference(path: str | Path, key: str, logps: dict[str, torch.Tensor]) -> None:
    """Write the reference log-probs cache atomically."""
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": key, "logps": logps}, tmp)
