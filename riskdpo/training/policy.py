"""The policy: which weights of the model train, and the trained model saved as a plain one.

With LoRA a fresh adapter is added to the frozen base (QLoRA on a 4-bit base);
in full fine-tuning the embeddings and the first `freeze_layers` blocks may be
frozen. Dropout is switched off either way, so the policy and the reference
score a pair alike at the start. A LoRA run saves its adapter in PEFT format
(OUTPUT_DIR/final-adapter) and the model with the adapter merged in
(OUTPUT_DIR/final-model, loadable by `from_pretrained` as it is); every saved
folder is written by `write_model_folder`.

Each process loads its copy where it will run: on a GPU straight onto its own
device (`device_map`), never a full copy in host memory per process first;
under FSDP with ``fsdp_cpu_ram_efficient_loading`` only rank 0 reads the
weights (transformers gives the other ranks empty tensors, and accelerate
broadcasts rank 0's weights when it shards the model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from riskdpo.core.fileio import atomic_dir
from riskdpo.models.loading import load_model
from riskdpo.models.quantized import load_4bit
from riskdpo.training.config import TrainConfig
from riskdpo.training.lora import (
    adapter_state, add_adapter, disable_dropout, freeze_first_blocks, lora_config, merge_adapter, save_adapter,
    save_plain_model,
)
from riskdpo.training.steps import RunState


def build_model(config: TrainConfig, base: str, precision: str, accelerator: Any) -> Any:
    """Load `base` and decide which weights train.

    With LoRA the frozen base is loaded in the training precision (or 4-bit);
    in full fine-tuning the weights stay fp32 and bf16/fp16 is autocast
    (mixed precision), since AdamW updates are lost in bf16 weights.
    """
    if config.load_in_4bit:  # the 4-bit weights are placed on this process's device as they load
        model = load_4bit(base, precision, load_device(accelerator), trust_remote_code=config.trust_remote_code)
    else:
        model = load_model(base, precision=precision if config.lora else "fp32",
                           trust_remote_code=config.trust_remote_code, **placement(accelerator))
    disable_dropout(model)
    if config.gradient_checkpointing and not config.load_in_4bit:
        enable_checkpointing(model)
    if config.lora:
        return add_adapter(model, adapter_config(config), quantized=config.load_in_4bit,
                           gradient_checkpointing=config.gradient_checkpointing)
    freeze_first_blocks(model, config.freeze_layers)
    return model


def load_device(accelerator: Any) -> str | int:
    """Where this process's weights belong: its GPU's index, or the CPU."""
    return accelerator.local_process_index if accelerator.device.type == "cuda" else "cpu"


def placement(accelerator: Any) -> dict[str, Any]:
    """`from_pretrained` arguments that load this process's copy where it will run.

    On a GPU the weights go straight to the process's device (``device_map``), so
    no process first holds a full copy in host memory. Under FSDP the model is
    loaded on the CPU and accelerate shards it; with
    ``fsdp_cpu_ram_efficient_loading: true`` (configs/fsdp.yaml) transformers
    reads the weights on rank 0 only.
    """
    from accelerate.utils import DistributedType

    if accelerator.device.type != "cuda" or accelerator.distributed_type == DistributedType.FSDP:
        return {}
    return {"device_map": {"": accelerator.local_process_index}}


def enable_checkpointing(model: Any) -> None:
    """Activation (gradient) checkpointing, non-reentrant (works with frozen inputs, as under LoRA)."""
    if hasattr(model, "activation_checkpointing_enable"):  # its newer name (transformers 5.17 has only the old one)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def adapter_config(config: TrainConfig) -> Any:
    return lora_config(config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets)


def write_model_folder(target: Path, write: Callable[[Path], None], card: str | None = None) -> None:
    """Write a saved model folder (final-model, final-adapter, sft-model): `write` fills a
    temporary folder, `card` becomes its README.md model card (`riskdpo.training.model_card`),
    and the folder replaces `target` only when complete. The one place a run writes a model
    folder, so whatever every such folder should hold goes here."""
    with atomic_dir(target) as tmp:
        write(tmp)
        if card is not None:
            (Path(tmp) / "README.md").write_text(card, encoding="utf-8")


def save_model(run: RunState, model: Any, base: str, target: Path, adapter_target: Path | None = None,
               card: str | None = None, adapter_card: str | None = None) -> None:
    """Save the trained model at `target` (LoRA merged into `base`, see `merge_adapter`) and,
    for LoRA with `adapter_target`, the adapter in PEFT format there; each with its model card."""
    accelerator, config = run.accelerator, run.config
    state = full_state_dict(accelerator, model)  # every process: FSDP gathers the shards here
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if config.lora:
            adapter = adapter_state(unwrapped, state)
            if adapter_target is not None:
                write_model_folder(adapter_target, lambda tmp: save_adapter(
                    adapter, unwrapped.peft_config["default"], base, run.tokenizer, tmp), adapter_card)
            merged = merge_adapter(base, adapter, adapter_config(config),
                                   four_bit=run.precision if config.load_in_4bit else None,
                                   device=load_device(accelerator), trust_remote_code=config.trust_remote_code)
            write_model_folder(target, lambda tmp: save_plain_model(merged, run.tokenizer, tmp), card)
        else:
            write_model_folder(target, lambda tmp: save_plain_model(unwrapped, run.tokenizer, tmp, state_dict=state), card)
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
