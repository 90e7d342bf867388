"""The policy: which weights of the model train, and the trained model saved as a plain one.

With LoRA a fresh adapter is added to the frozen base (QLoRA on a 4-bit base);
in full fine-tuning the embeddings and the first `freeze_layers` blocks may be
frozen. Dropout is switched off either way, so the policy and the reference
score a pair alike at the start. The final model is saved with the adapter
merged into the unquantized base, loadable by `from_pretrained` as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riskdpo.core.fileio import atomic_dir
from riskdpo.models.loading import load_model
from riskdpo.training.config import TrainConfig
from riskdpo.training.lora import (
    adapter_state, add_adapter, disable_dropout, freeze_first_blocks, lora_config, merge_adapter, quantization_config,
    save_plain_model,
)
from riskdpo.training.steps import RunState


def build_model(config: TrainConfig, base: str, precision: str, accelerator: Any) -> Any:
    """Load `base` and decide which weights train.

    With LoRA the frozen base is loaded in the training precision (or 4-bit);
    in full fine-tuning the weights stay fp32 and bf16/fp16 is autocast
    (mixed precision), since AdamW updates are lost in bf16 weights.
    """
    quantize = {}
    if config.load_in_4bit:  # the 4-bit weights are placed on this process's GPU as they load
        quantize = {"quantization_config": quantization_config(precision),
                    "device_map": {"": accelerator.local_process_index}}
    model = load_model(
        base, precision=precision if config.lora else "fp32", trust_remote_code=config.trust_remote_code, **quantize
    )
    disable_dropout(model)
    if config.gradient_checkpointing and not config.load_in_4bit:
        enable_checkpointing(model)
    if config.lora:
        return add_adapter(model, adapter_config(config), quantized=config.load_in_4bit,
                           gradient_checkpointing=config.gradient_checkpointing)
    freeze_first_blocks(model, config.freeze_layers)
    return model


def enable_checkpointing(model: Any) -> None:
    """Activation (gradient) checkpointing, non-reentrant (works with frozen inputs, as under LoRA)."""
    if hasattr(model, "activation_checkpointing_enable"):  # its newer name (transformers 5.17 has only the old one)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def adapter_config(config: TrainConfig) -> Any:
    return lora_config(config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets)


def save_model(run: RunState, model: Any, base: str, target: Path) -> None:
    """Save a plain model (LoRA merged into the unquantized `base`) with its tokenizer."""
    accelerator, config = run.accelerator, run.config
    state = full_state_dict(accelerator, model)  # every process: FSDP gathers the shards here
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        with atomic_dir(target) as tmp:
            if config.lora:
                adapter = adapter_state(unwrapped, state)
                merged = merge_adapter(base, adapter, adapter_config(config), precision=run.precision,
                                       trust_remote_code=config.trust_remote_code)
                save_plain_model(merged, run.tokenizer, tmp)
            else:
                save_plain_model(unwrapped, run.tokenizer, tmp, state_dict=state)
    accelerator.wait_for_everyone()


def full_state_dict(accelerator: Any, model: Any) -> dict:
    """The model's whole state dict on the main process (every process must call it).

    Under FSDP2 the shards are gathered into plain tensors, on the CPU when the
    model lives on a GPU; accelerate's `get_state_dict` hands back the sharded
    DTensors when the device mesh is on the CPU, which no `save_pretrained` can write.
    """
    if not getattr(accelerator, "is_fsdp2", False):
        return accelerator.get_state_dict(model)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    on_gpu = accelerator.device.type != "cpu"
    options = StateDictOptions(full_state_dict=True, cpu_offload=on_gpu, broadcast_from_rank0=False)
    return get_model_state_dict(model, options=options)
