"""Which SDPA kernels a training run may use: cuDNN attention is left out where its backward pass
returns NaN gradients.

On Hopper GPUs (compute capability 9.x) PyTorch prefers cuDNN attention whenever it accepts
the mask, and its backward kernel has known faults when an explicit mask is passed: NaN in
the query gradient when the sequence length L ≡ 64 (mod 128) and some query row's
log-sum-exp is below ln(FLT_MAX) ≈ -88.7 (pytorch/pytorch#196678: a regression from torch
2.11, reproduced with torch 2.13 and cuDNN 9.20, fixed only by a later cuDNN), and NaN
key/value gradients at other shapes with a very negative log-sum-exp (NVIDIA/cudnn-frontend
#1072, cuDNN 9.26). riskdpo always passes a block mask, and a model with a "massive
activation" head gives such rows, so a run would stop at a random step with a non-finite
gradient. Padding packed lengths away from 64 (mod 128) would avoid the first fault only;
turning cuDNN attention off for the run avoids both, and the memory-efficient kernel, which
takes the same additive mask, runs instead (flash attention takes no mask). The forward
pass alone (evaluation, generation) is not affected and keeps every kernel.

No torch release is known to carry a fixed cuDNN, so every torch from 2.11 on a 9.x GPU is
treated as affected; other GPUs keep the default choice.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import torch

#: The first torch release whose SDPA prefers the faulty cuDNN backward on 9.x GPUs.
FIRST_AFFECTED_TORCH = (2, 11)


def cudnn_attention_unsafe(capability: tuple[int, int] | None, torch_version: str) -> bool:
    """Whether cuDNN attention must be kept out of training on a GPU of compute `capability`
    (None: not a CUDA device) under torch `torch_version` (module docstring)."""
    if capability is None or capability[0] != 9:
        return False
    release = re.match(r"(\d+)\.(\d+)", torch_version)
    return release is not None and tuple(map(int, release.groups())) >= FIRST_AFFECTED_TORCH


@contextlib.contextmanager
def training_attention(device: torch.device) -> Iterator[bool]:
    """cuDNN attention off on `device` while the block runs, where `cudnn_attention_unsafe`; the
    previous setting restored after. Yields whether it was turned off. The setting is global, so it
    also holds for the backward pass and for activation checkpointing's recomputation."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    if not cudnn_attention_unsafe(capability, torch.__version__):
        yield False
        return
    enabled = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(False)
    try:
        yield True
    finally:
        torch.backends.cuda.enable_cudnn_sdp(enabled)
