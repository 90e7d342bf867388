"""Checkpoints and cached reference log-probs: what a run needs to continue.

`OUTPUT_DIR/checkpoints/step-N/` holds accelerate's state after N optimizer
steps: the trainable weights (the adapter, or the unfrozen part of the model),
optimizer, learning-rate schedule and the random state of every process, plus
`progress.json` (epoch and step within it, which fix the data position since
the batch order of an epoch is a pure function of the seed). All processes write
into `.step-N.tmp`, which is renamed to `step-N` once complete, so a crash never
leaves half a checkpoint to resume from.

`OUTPUT_DIR/reference-logps.pt` holds log π_ref of every completion, computed
once before training and reused on resume; it records a fingerprint of the
reference model and the token ids, so a stale cache is never used.
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

from riskdpo.core.fileio import atomic_path, write_json

_STEP_DIR = re.compile(r"^step-(\d+)$")


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
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, directory: str | Path) -> Progress:
    """Restore weights, optimizer, schedule and random state; return the progress."""
    accelerator.load_state(str(directory), strict=False)
    return Progress(**json.loads((Path(directory) / "progress.json").read_text(encoding="utf-8")))


def remove_partial_checkpoints(output_dir: str | Path) -> None:
    """Delete `.step-N.tmp` folders a crash left behind."""
    root = Path(output_dir) / "checkpoints"
    for partial in root.glob(".step-*.tmp") if root.is_dir() else []:
        shutil.rmtree(partial)


def fingerprint(*parts: Any) -> str:
    """sha256 of the JSON of `parts`: identifies what a cache was computed from."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def load_reference(path: str | Path, expected: str) -> dict[str, torch.Tensor] | None:
    """Cached reference log-probs, or None when absent or computed from something else."""
    source = Path(path)
    if not source.exists():
        return None
    cached = torch.load(source, map_location="cpu")
    return cached["logps"] if cached.get("fingerprint") == expected else None


def save_reference(path: str | Path, key: str, logps: dict[str, torch.Tensor]) -> None:
    """Write the reference log-probs cache atomically."""
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": key, "logps": logps}, tmp)
