"""LoRA dropout is off unless asked for: the library, the command line and TrainConfig agree, and
a policy with the default adapter computes the same thing on every training-mode forward pass
(what "the same result whatever the process split" and "policy = reference at the start" assume)."""

import torch

from helpers import choice_pairs, tiny_model  # noqa: F401  (fixture)
from riskdpo.commands.training import train as train_command
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import batch_logps, collate, tokenize_group
from riskdpo.training.lora import DEFAULT_LORA_DROPOUT, add_adapter, lora_config
from riskdpo.training.config import TrainConfig


def test_every_default_is_no_dropout():
    cli_default = next(p.default for p in train_command.params if p.name == "lora_dropout")
    assert DEFAULT_LORA_DROPOUT == cli_default == TrainConfig.lora_dropout == lora_config(8, 16.0).lora_dropout == 0.0


def test_a_default_adapter_is_deterministic_in_training_mode(tiny_model):  # noqa: F811
    tokenizer = load_tokenizer(str(tiny_model))
    batch = collate([tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in choice_pairs()[:4]],
                    tokenizer.pad_token_id)

    def two_passes(dropout):
        config = lora_config(8, 16.0) if dropout is None else lora_config(8, 16.0, dropout)
        policy = add_adapter(load_model(str(tiny_model)), config, quantized=False, gradient_checkpointing=False).train()
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:  # a trained adapter: B != 0, so dropout on its input would show
                torch.nn.init.normal_(parameter, std=0.5, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            return batch_logps(policy, batch)[0], batch_logps(policy, batch)[0]

    first, second = two_passes(None)
    assert torch.equal(first, second)
    with_dropout = two_passes(0.05)
    assert not torch.equal(*with_dropout)  # the check can see dropout where there is some
