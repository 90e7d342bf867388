"""What training measures, and where it goes: metrics.jsonl and W&B.

Per logged step, `metrics.jsonl` gets one JSON object: the DPO statistics
averaged over the pairs of the steps since the last log (`DPO_KEYS`), the
learning rate, the gradient norm, epoch, step, and throughput (`TIMING_KEYS`,
the only values that differ between two runs with the same seed). Validation
lines carry the same statistics prefixed `val/`, the supervised warm-up's lines
`sft/`. With a W&B project the same records go to wandb: online where
credentials exist, otherwise offline (never an interactive login prompt). A
resumed training run passes the interrupted run's id, so its records continue
that W&B run (online; offline, both parts carry the id and `wandb sync` uploads
them to the one run) instead of starting a second one.
"""

from __future__ import annotations

import json
import netrc
import os
import sys
from pathlib import Path
from typing import Any

import torch

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import jsonl_lines, write_jsonl

#: DPO statistics, each a mean over pairs.
DPO_KEYS = (
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracy",
    "rewards/margin",
    "logps/chosen",
    "logps/rejected",
)
#: Keys that measure speed, not learning; they vary between identical runs.
TIMING_KEYS = ("pairs/s", "tokens/s", "val/pairs/s", "val/tokens/s")


def dpo_sums(
    losses: torch.Tensor,
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Per-batch sums of the DPO statistics (means are taken after summing over processes).

    accuracy = [r_c > r_r], margin = r_c - r_r, with r the implicit rewards.
    `weight` 0 turns a padding batch (see steps.process_slices) into zeros.
    """
    values = {
        "loss": losses,
        "rewards/chosen": chosen_rewards,
        "rewards/rejected": rejected_rewards,
        "rewards/accuracy": (chosen_rewards > rejected_rewards).float(),
        "rewards/margin": chosen_rewards - rejected_rewards,
        "logps/chosen": chosen_logps,
        "logps/rejected": rejected_logps,
    }
    sums = {key: value.detach().float().sum() * weight for key, value in values.items()}
    sums["pairs"] = torch.tensor(float(len(losses)) * weight)
    return sums


def add_sums(total: dict[str, torch.Tensor] | None, more: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Element-wise sum of two dicts of sums (`total` None starts a new one)."""
    if total is None:
        return dict(more)
    return {key: total[key] + more[key].to(total[key].device) for key in total}


def reduce_sums(accelerator: Any, sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """Sum a dict of scalar tensors over all processes."""
    keys = sorted(sums)
    stacked = torch.stack([sums[key].float().to(accelerator.device) for key in keys])
    total = accelerator.reduce(stacked, reduction="sum") if accelerator.num_processes > 1 else stacked
    return dict(zip(keys, total.tolist()))


def dpo_means(sums: dict[str, float], prefix: str = "") -> dict[str, float]:
    """Means over pairs of the DPO statistics, keys prefixed by `prefix` (with `nll`, the
    chosen responses' length-normalised NLL, where the loss has that term)."""
    return {prefix + key: sums[key] / sums["pairs"] for key in (*DPO_KEYS, *(("nll",) if "nll" in sums else ()))}


def without_timing(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics record minus the timing keys, for comparing runs."""
    return {key: value for key, value in record.items() if key not in TIMING_KEYS}


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file (an incomplete last line, as a crash leaves it, is dropped)."""
    source = Path(path)
    if not source.exists():
        return []
    records = []
    for _, line in jsonl_lines(source.read_text(encoding="utf-8")):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def truncate_metrics(path: str | Path, last_step: int) -> None:
    """Keep the records up to `last_step` (warm-up records all), so a resumed run logs no step twice."""
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    write_jsonl(path, kept)


def wandb_credentials() -> bool:
    """Whether a W&B API key is available (WANDB_API_KEY or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class MetricsLog:
    """Appends records to metrics.jsonl and, optionally, a wandb run.

    Only the main process writes; other processes hold an inactive log. Lines
    are flushed at once so that a crash loses at most the line being written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        active: bool,
        resume: bool,
        wandb_project: str | None = None,
        wandb_dir: str | Path | None = None,
        wandb_run_id: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.active = active
        self.run = None
        if not active:
            return
        if wandb_project:  # first: a W&B start that fails leaves metrics.jsonl unopened (not emptied by "w")
            self.run = _start_wandb(wandb_project, Path(wandb_dir or self.path.parent), config or {}, wandb_run_id)
        self.handle = open(self.path, "a" if resume else "w", encoding="utf-8")

    @property
    def wandb_run_id(self) -> str | None:
        """The W&B run's id, for a later resume to continue it; None without W&B."""
        return None if self.run is None else self.run.id

    def log(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        if self.run is not None:
            self.run.log(record)

    def close(self, failed: bool = False) -> None:
        if not self.active:
            return
        self.handle.close()
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            if self.run.settings.mode == "offline":
                run_dir = Path(self.run.dir).parent  # .../wandb/offline-run-DATE-ID/files
                print(f"wandb: offline run saved; upload it with `wandb sync {run_dir}`", file=sys.stderr)
            self.run = None


def wandb_mode() -> str:
    """online with credentials, offline otherwise; WANDB_MODE may ask for offline or
    disabled, but online without credentials would prompt for a key, so it is never chosen then."""
    requested = os.environ.get("WANDB_MODE", "online")
    if requested in ("offline", "disabled", "dryrun"):
        return "offline" if requested == "dryrun" else requested
    return "online" if wandb_credentials() else "offline"


def _start_wandb(project: str, directory: Path, config: dict[str, Any], run_id: str | None) -> Any:
    """A wandb run in `directory` (OUTPUT_DIR/wandb/...), in `wandb_mode()`; with `run_id`, that run continued.

    A process that inherits WANDB_SERVICE joins that wandb service instead of starting its
    own; a notebook's in-process run leaves it set for every later `!riskdpo train`. When a
    run started that way was killed, the long-lived service still holds its run id, and
    continuing it is refused ("run ID ... is in use"): that is said in one line, with the way
    out, instead of wandb's traceback."""
    import wandb

    mode = wandb_mode()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(project=project, dir=str(directory), config=config, mode=mode,
                          settings=wandb.Settings(silent=True), id=run_id, resume="allow" if run_id else None)
    except Exception as error:
        service = os.environ.get("WANDB_SERVICE")
        if run_id is None or service is None or "is in use" not in str(error):
            raise
        raise UserError(f"--resume: W&B run {run_id} is still held by the wandb service this process inherited "
                        f"(WANDB_SERVICE={service}), which outlived the killed run; unset WANDB_SERVICE "
                        "(or restart the notebook kernel that set it) and resume again") from None
