"""Which weights train: LoRA adapters (optionally on a 4-bit base, QLoRA) or
the full model with its first blocks frozen; and merging adapters back.

LoRA (Hu et al. 2021) trains a low-rank update W + (α/r)·B·A beside each
targeted linear layer, with B = 0 at the start, so the model with a fresh
adapter *is* the base model. DPO uses that: with the adapter disabled the model
is its own reference. QLoRA (Dettmers et al. 2023) keeps the frozen base in 4-bit
NF4 and the adapter in full precision.

LoRA dropout defaults to 0 (`DEFAULT_LORA_DROPOUT`): with dropout on, the
policy's forward pass is random, so the policy does not equal the reference at
the start and a run depends on each process's random state (it would no longer
give the same result whatever the process split). Dropout stays available as an
option, for users who want it as a regulariser.

A finished adapter is saved twice (`riskdpo.training.policy.save_model`): in
PEFT format (`save_adapter`, for `PeftModel.from_pretrained(base, path)` and for
`eval-choices`, which scores base + adapter unmerged), and merged into the base
(`merge_adapter`) as a plain causal LM that loads with
`AutoModelForCausalLM.from_pretrained`, without peft. The merge adds the update
to the base weights as stored on disk (not as the training precision rounded
them, so weights LoRA never touches come out exactly as they were), or for
QLoRA to the NF4-dequantized weights the adapter was trained against. It runs in
fp32 and the merged model stays fp32: a LoRA update is small next to the weight
it changes, often below half a bf16 step (2^-9 to 2^-8 of |W|; an fp32 step is
2^-24), so a bf16 merge (or bf16 storage) rounds most of it away and leaves the
base. Evaluate the merged model in fp32 for the same reason (`eval-choices
--precision fp32`), or evaluate the adapter.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from riskdpo.core.errors import UserError
from riskdpo.models.loading import load_model, resolve_model
from riskdpo.models.quantized import dequantized_weights, load_4bit


#: LoRA dropout unless asked otherwise: none (see the module docstring).
DEFAULT_LORA_DROPOUT = 0.0


def lora_config(rank: int, alpha: float, dropout: float = DEFAULT_LORA_DROPOUT, targets: str = "all-linear") -> Any:
    """A peft `LoraConfig` for a causal LM.

    `targets` is "all-linear" (every linear projection except the output head)
    or a comma-separated list of module names such as "q_proj,v_proj".
    """
    from peft import LoraConfig

    target_modules = targets if targets == "all-linear" else [name.strip() for name in targets.split(",") if name.strip()]
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM")


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout module to p = 0.

    DPO's loss assumes the policy equals the reference at the start; dropout in
    the policy's forward pass (phi-2 has resid_pdrop = 0.1) would break that
    and make runs depend on the random state of each process.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def add_adapter(model: Any, config: Any, *, quantized: bool, gradient_checkpointing: bool) -> Any:
    """Wrap `model` in a fresh, trainable LoRA adapter (base weights frozen)."""
    from peft import prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    return _with_adapter(model, config)


def _with_adapter(model: Any, config: Any) -> Any:
    """peft's `get_peft_model`, quiet about a transformers attribute it reads (deprecated in v5)."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)


def transformer_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of transformer blocks (the ModuleList with one entry per layer)."""
    layers = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == layers:
            return module
    raise UserError(f"{type(model).__name__}: cannot find its {layers} transformer blocks to freeze")


def freeze_first_blocks(model: torch.nn.Module, count: int) -> None:
    """Freeze the input embeddings and the first `count` transformer blocks.

    The lowest layers hold the most general features; freezing them saves
    optimizer memory and keeps fine-tuning from drifting far from the base.
    """
    blocks = transformer_blocks(model)
    if count > len(blocks):
        raise UserError(f"--freeze-layers {count}: the model has only {len(blocks)} transformer blocks")
    for module in [model.get_input_embeddings(), *blocks[:count]]:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def adapter_state(peft_model: Any, full_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter's own weights out of the full state dict of a peft model."""
    from peft import get_peft_model_state_dict

    return {key: value.detach().cpu() for key, value in get_peft_model_state_dict(peft_model, state_dict=full_state).items()}


def merge_adapter(
    base: str, adapter: dict[str, torch.Tensor], config: Any, *, four_bit: str | None = None,
    device: str | int = "cpu", trust_remote_code: bool = False,
) -> Any:
    """A plain fp32 model: `adapter` merged into the weights it was trained against.

    W' = W + (α/r)·B·A for each adapted layer (peft `merge_and_unload`), in fp32,
    where W is the base as stored on disk (loaded in fp32, which holds bf16 or
    fp32 weights exactly: every weight LoRA does not adapt is saved unchanged),
    and for QLoRA (`four_bit`: the training precision) each 4-bit layer's
    NF4-dequantized Ŵ (`riskdpo.models.quantized`), from the base loaded with the
    same quantization config on `device`. The result has no peft modules and no
    peft entries in its config, and stays fp32 (see the module docstring).
    """
    from peft import set_peft_model_state_dict

    model = load_model(base, precision="fp32", trust_remote_code=trust_remote_code)
    if four_bit:
        quantized = load_4bit(base, four_bit, device, trust_remote_code=trust_remote_code)
        trained_against = dequantized_weights(quantized)
        del quantized
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, weight in trained_against.items():
                parameters[name].copy_(weight)
    peft_model = _with_adapter(model, config)
    set_peft_model_state_dict(peft_model, adapter)
    return peft_model.merge_and_unload()


def save_adapter(
    adapter: dict[str, torch.Tensor], config: Any, base: str, tokenizer: Any, directory: str | Path
) -> None:
    """Save `adapter` in PEFT format (adapter_config.json naming `base`, adapter_model.safetensors)
    with the tokenizer, loadable by `PeftModel.from_pretrained(base_model, directory)`.

    Written directly rather than by `PeftModel.save_pretrained`, which would also
    write a README.md model card of its own.
    """
    import copy

    from safetensors.torch import save_file

    saved = copy.deepcopy(config)
    saved.base_model_name_or_path = resolve_model(base)
    saved.inference_mode = True
    saved.save_pretrained(str(directory))
    save_file({key: value.contiguous() for key, value in adapter.items()}, str(Path(directory) / "adapter_model.safetensors"),
              metadata={"format": "pt"})
    tokenizer.save_pretrained(directory)


def save_plain_model(model: Any, tokenizer: Any, directory: str | Path, state_dict: dict | None = None) -> None:
    """Save a model and its tokenizer (chat template included) with save_pretrained."""
    model.save_pretrained(directory, state_dict=state_dict)
    tokenizer.save_pretrained(directory)
