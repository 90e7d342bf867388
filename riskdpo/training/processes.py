"""The processes of a run and the timeout of their process group.

Under `accelerate launch` or `torchrun` every process joins one process group;
a collective (a gradient all-reduce, a barrier) waits for all of them, and
fails once it has waited longer than the group's timeout. The longest wait of a
run is at its end: rank 0 alone merges the LoRA adapter into an fp32 copy of
the base and saves it (for an 8B model: reading 16 GB, writing 32 GB, minutes
on a network disk) while the other ranks wait at a barrier. NCCL's default
timeout (10 minutes) can kill that wait and with it a finished run, so the
group is created with `PROCESS_GROUP_TIMEOUT`, sized for the save, through
accelerate's `InitProcessGroupKwargs`, before anything else creates it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch

#: How long a collective may wait for the slowest process: rank 0's merge and save of an
#: 8B-parameter model takes minutes; an hour leaves room for slow disks and larger models.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=60)

#: accelerate's mixed-precision setting for each training precision.
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def on_cpu_processes() -> bool:
    """torchrun on a machine without CUDA: gloo over CPU processes (accelerate takes
    that route only when told to use the CPU)."""
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def group_kwargs(timeout: timedelta) -> Any:
    from accelerate import InitProcessGroupKwargs

    return InitProcessGroupKwargs(timeout=timeout)


def start_processes(timeout: timedelta = PROCESS_GROUP_TIMEOUT) -> Any:
    """accelerate's process state, joining the process group (with `timeout`) when there are several."""
    from accelerate import PartialState

    return PartialState(cpu=on_cpu_processes(), **group_kwargs(timeout).to_kwargs())


def make_accelerator(precision: str, timeout: timedelta = PROCESS_GROUP_TIMEOUT) -> Any:
    """An Accelerator for `precision` in the process group of `start_processes`."""
    from accelerate import Accelerator

    return Accelerator(cpu=on_cpu_processes(), mixed_precision=MIXED_PRECISION[precision],
                       step_scheduler_with_optimizer=False, kwargs_handlers=[group_kwargs(timeout)])


def group_timeout() -> timedelta | None:
    """The timeout of the live default process group (None in a single process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    from torch.distributed.distributed_c10d import _get_default_group

    group = _get_default_group()
    device = torch.device("cuda" if dist.get_backend() == "nccl" else "cpu")
    return group._get_backend(device).options._timeout
