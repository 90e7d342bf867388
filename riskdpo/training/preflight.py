"""Options checked against the model before a run writes anything.

An unknown `--lora-targets` module would surface as peft's exception after
run.json was written, and `--freeze-layers` beyond the model's blocks as an
error after the run folder was made; both are refused here instead. It is found here, from the model's configuration alone:
the module names come from the model built on the meta device (no weights are
read or allocated). A missing local model folder is refused by
`riskdpo.models.loading.check_model_path`, which every loader goes through.
"""

from __future__ import annotations


from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.models.loading import resolve_model


def _model_config(name: str, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--model {name}: cannot read the model's configuration ({detail})") from None


def check_freeze_layers(name: str, count: int, *, trust_remote_code: bool) -> None:
    """--freeze-layers K needs K <= the model's transformer blocks (`num_hidden_layers` of its config)."""
    if not count:
        return
    blocks = getattr(_model_config(name, trust_remote_code), "num_hidden_layers", None)
    if isinstance(blocks, int) and count > blocks:
        raise UserError(f"--freeze-layers {count}: the model has only {blocks} transformer blocks")


def check_lora_targets(name: str, targets: str, *, trust_remote_code: bool) -> None:
    """Every module of --lora-targets must name layers LoRA can adapt in the model.

    peft matches a target to a module whose dotted name equals it or ends with
    `.target`; it adapts linear, embedding and convolution layers.
    """
    if targets == "all-linear":
        return
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    model_config = _model_config(name, trust_remote_code)
    try:
        with init_empty_weights():
            skeleton = AutoModelForCausalLM.from_config(model_config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--model {name}: cannot read the model's configuration ({detail})") from None
    adaptable = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, Conv1D)
    modules = dict(skeleton.named_modules())
    linear = sorted({module_name.rsplit(".", 1)[-1] for module_name, module in modules.items()
                     if isinstance(module, torch.nn.Linear)})
    for target in (part.strip() for part in targets.split(",")):
        matches = [module for module_name, module in modules.items()
                   if module_name == target or module_name.endswith("." + target)]
        if not matches:
            raise UserError(f"--lora-targets {target}: {name} has no module of that name "
                            f"(its linear modules: {', '.join(linear)})")
        if not any(isinstance(module, adaptable) for module in matches):
            raise UserError(f"--lora-targets {target}: in {name} it is a {type(matches[0]).__name__}, not a layer "
                            f"LoRA can adapt (its linear modules: {', '.join(linear)})")
