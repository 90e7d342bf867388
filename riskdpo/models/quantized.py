"""4-bit NF4 weights (QLoRA): the quantization config, and the weights a 4-bit model computes with.

QLoRA (Dettmers et al. 2023) stores each block's linear weights in NF4: per
block of 64 weights an absmax scale s (itself 8-bit quantized with double
quantization) and a 4-bit index into the 16 NF4 levels q_k, so the weight the
forward pass multiplies by is

    Ŵ_ij = q[idx_ij] · s_block(ij)          (bitsandbytes `dequantize_4bit`)

rounded to the dtype the weights were loaded in. Ŵ differs from the original W
by up to half a gap between NF4 levels times s, about 5 % of the block's largest
weight: far more than a LoRA update. An adapter trained on a 4-bit base learned
to correct Ŵ, not W, so it is merged into Ŵ (`dequantized_weights`).

bitsandbytes computes 4-bit layers on CUDA GPUs and, from version 0.48 on, on
the CPU (`available`).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from riskdpo.core.errors import UserError
from riskdpo.models.loading import load_model, torch_dtype


def available(device: str) -> bool:
    """Whether bitsandbytes can compute 4-bit layers on `device` (cuda or cpu)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return False
    if device.startswith("cuda"):
        return torch.cuda.is_available()
    from importlib.metadata import version

    major, minor = (int(part) for part in version("bitsandbytes").split(".")[:2])
    return (major, minor) >= (0, 48)


def quantization_config(precision: str) -> Any:
    """4-bit NF4 with double quantization, computing in `precision`; a `UserError` without bitsandbytes."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("4-bit loading needs the bitsandbytes package (pip install bitsandbytes)")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch_dtype(precision),
        bnb_4bit_use_double_quant=True,
    )


def load_4bit(name: str, precision: str, device: str | int, *, trust_remote_code: bool = False) -> Any:
    """`name` loaded as QLoRA loads it: 4-bit block linears, the rest in `precision`, placed on `device`."""
    return load_model(name, precision=precision, trust_remote_code=trust_remote_code,
                      quantization_config=quantization_config(precision), device_map={"": device})


def dequantized_weights(model: Any) -> dict[str, torch.Tensor]:
    """Ŵ of every 4-bit linear layer of `model` by weight name, in fp32 on the CPU (exact: Ŵ is
    computed in the load dtype, which fp32 holds without rounding)."""
    import bitsandbytes as bnb

    weights = {}
    for name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = module.weight
            weights[f"{name}.weight"] = bnb.functional.dequantize_4bit(weight.data, weight.quant_state).float().cpu()
    return weights
