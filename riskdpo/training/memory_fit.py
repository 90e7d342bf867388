"""Will the run fit? The memory estimate against the memory there is, before anything loads.

A run that does not fit is otherwise killed an hour later (the kernel's
out-of-memory killer on the CPU, a CUDA out-of-memory error on a GPU). Before
the weights load, `check_fits` compares

    need = estimate_for_run(config).total × processes sharing the memory
    have = MemAvailable of /proc/meminfo (CPU RAM)  or  free memory of the GPU

(`riskdpo.training.memory.estimate_for_run`, with the precision the run
resolved to: fp32 on the CPU under "auto"). Where need > have it stops with one
line naming the largest micro-batch that fits (`--batch-size`; `--grad-accum`
keeps the global batch), or `--gradient-checkpointing` with the largest batch
that fits with it, or that nothing fits; `--force` trains anyway. On the CPU the
processes of one machine (LOCAL_WORLD_SIZE) share its RAM; on a GPU each process
has its own device.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

from riskdpo.core.errors import UserError

_GIB = 1024**3


def available_ram(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """Bytes of RAM the kernel can give without swapping (MemAvailable), or None where unknown."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory(device: Any) -> int | None:
    """Free bytes where the run's tensors will live: the GPU's free memory, else available RAM."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return available_ram()


def _largest_fitting(need: Callable[[int, bool], int], have: int, batch_size: int, checkpointing: bool) -> int | None:
    """The largest micro-batch b <= batch_size with need(b, checkpointing) <= have, by bisection (need grows with b)."""
    if need(1, checkpointing) > have:
        return None
    low, high = 1, batch_size
    while low < high:
        middle = (low + high + 1) // 2
        if need(middle, checkpointing) <= have:
            low = middle
        else:
            high = middle - 1
    return low


def check_fits(config: Any, precision: str, device: Any, available: int | None = None) -> None:
    """Refuse (one line, `UserError`) a run whose memory estimate exceeds `available`
    (measured on `device` when None; an unknown figure lets the run go), unless `config.force`."""
    from riskdpo.training.memory import estimate_for_run

    if config.force:
        return
    have = available_memory(device) if available is None else available
    if have is None:
        return
    on_cpu = getattr(device, "type", str(device)) != "cuda"
    sharing = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if on_cpu else 1
    estimated = "fp32" if precision == "fp32" else "bf16"

    def need(batch_size: int, checkpointing: bool) -> int:
        settings = dataclasses.replace(config, batch_size=batch_size, gradient_checkpointing=checkpointing,
                                       precision=estimated)
        return estimate_for_run(settings).total * sharing

    wanted = need(config.batch_size, config.gradient_checkpointing)
    if wanted <= have:
        return
    where = "RAM available" if on_cpu else "free on the GPU"
    shared = f" ({sharing} processes)" if sharing > 1 else ""
    head = (f"--batch-size {config.batch_size}: the run needs about {wanted / _GIB:.1f} GiB{shared} by its estimate "
            f"but {have / _GIB:.1f} GiB is {where}")
    batch = _largest_fitting(need, have, config.batch_size, config.gradient_checkpointing)
    if batch is not None:
        advice = f"the largest micro-batch that fits is --batch-size {batch} (raise --grad-accum to keep the global batch)"
    elif not config.gradient_checkpointing and (batch := _largest_fitting(need, have, config.batch_size, True)):
        advice = f"--gradient-checkpointing --batch-size {batch} fits"
    else:
        advice = ("not even --batch-size 1 with --gradient-checkpointing fits (shorten --max-length"
                  + (")" if config.lora else " or train --lora)"))
    raise UserError(f"{head}; {advice}, or pass --force to train anyway")
