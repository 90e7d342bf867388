"""A LoRA adapter saved in PEFT format, scored on its base without merging it.

A riskdpo LoRA run saves OUTPUT_DIR/final-adapter (``adapter_config.json`` and
``adapter_model.safetensors``, as peft's `save_pretrained` writes them, plus the
tokenizer) beside the merged OUTPUT_DIR/final-model. Loaded unmerged, the base
is held in the evaluation precision and the adapter beside it in fp32 (peft
keeps adapter weights fp32): each adapted layer computes base(x) + (α/r)·B·A·x,
the update added to the layer's output. A bf16 merge would instead round
W + ΔW to bf16 weight by weight, and a LoRA update is mostly below half a bf16
step of W, so most of it would be lost (`riskdpo.training.lora`).

`evaluated_model` lets a run folder stand for its trained model: the adapter
where the run saved one, else its final-model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.models.loading import TOKENIZER_FILES, load_model, resolve_model

ADAPTER_CONFIG = "adapter_config.json"
#: The folders of a run that hold its trained model, in the order a run folder is read.
RUN_MODELS = ("final-adapter", "final-model")


def is_adapter(name: str) -> bool:
    """Whether `name` is a folder holding a PEFT adapter rather than a whole model."""
    path = Path(resolve_model(name)).expanduser()
    return (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file()


def evaluated_model(name: str) -> str:
    """`name`, or for a riskdpo run folder (run.json, no model files) its final-adapter or final-model."""
    path = Path(name).expanduser()
    if not path.is_dir() or (path / "config.json").exists() or (path / ADAPTER_CONFIG).exists():
        return name
    if not (path / "run.json").is_file():
        return name
    for folder in RUN_MODELS:
        if (path / folder).is_dir():
            return str(path / folder)
    raise UserError(f"--model {name}: is a riskdpo train run folder, not a model; it holds no "
                    f"{' or '.join(RUN_MODELS)} yet (the run did not finish)")


def adapter_base(name: str) -> str:
    """The base model an adapter was trained on (its adapter_config.json's base_model_name_or_path)."""
    path = Path(resolve_model(name)).expanduser() / ADAPTER_CONFIG
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: cannot read the adapter's config ({error})") from None
    if not base:
        raise UserError(f"{path}: names no base_model_name_or_path, so the adapter's base model is unknown")
    return base


def tokenizer_source(name: str) -> str:
    """Where `name`'s tokenizer is: its own folder, or for an adapter saved without one its base."""
    path = Path(resolve_model(name)).expanduser()
    if is_adapter(name) and not any((path / file).exists() for file in TOKENIZER_FILES):
        return adapter_base(name)
    return name


def load_with_adapter(name: str, *, precision: str, **kwargs: Any) -> Any:
    """The adapter's base loaded in `precision` (`kwargs` to `load_model`, e.g. a 4-bit config)
    with the adapter applied unmerged: a plain transformers model whose adapted layers are
    peft LoRA layers."""
    from peft import PeftModel

    base = load_model(adapter_base(name), precision=precision, **kwargs)
    try:
        wrapped = PeftModel.from_pretrained(base, str(Path(resolve_model(name)).expanduser()))
    except (OSError, ValueError, RuntimeError) as error:
        raise UserError(f"{name}: cannot apply the adapter to {adapter_base(name)} ({str(error).splitlines()[0]})") from None
    return wrapped.get_base_model().eval()
