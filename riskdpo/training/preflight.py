"""Options checked against the model before a run writes anything.

An unknown `--lora-targets` module would surface as peft's exception after
run.json was written. It is found here, from the model's configuration alone:
the module names come from the model built on the meta device (no weights are
read or allocated). A missing local model folder is refused by
`riskdpo.models.loading.check_model_path`, which every loader goes through.
"""

from __future__ import annotations


from riskdpo.core.errors import UserError
from riskdpo.models.loading import resolve_model


def check_lora_targets(name: str, targets: str, *, trust_remote_code: bool) -> None:
    """Every module of --lora-targets must name layers LoRA can adapt in the model.

    peft matches a target to a module whose dotted name equals it or ends with
    `.target`; it adapts linear, embedding and convolution layers.
    """
    if targets == "all-linear":
        return
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    try:
        model_config = AutoConfig.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code)
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
