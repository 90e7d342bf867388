"""QLoRA: the saved model is the trained one. The adapter learns against the NF4-dequantized
weights Ŵ; merged into them (not into the original W, which differs from Ŵ by far more than
the update) the saved model gives the trained policy's log-probs.

Needs bitsandbytes with CPU support (>= 0.48; run with 0.50.2), which the dev extra installs
(`riskdpo[qlora]`); skipped where it is absent. On a GPU the
same arithmetic runs in bitsandbytes' CUDA kernels: the GPU suite's first checks repeat this
test there, and a QLoRA `riskdpo train --load-in-4bit` end to end (CPU training with 4-bit
weights is refused: --load-in-4bit needs CUDA).
"""

import pytest
import torch

from helpers import choice_pairs, tiny_model  # noqa: F401  (fixture)
from riskdpo.models.loading import load_tokenizer
from riskdpo.models.logps import pair_logps
from riskdpo.models.quantized import available, dequantized_weights, load_4bit
from riskdpo.training.lora import adapter_state, add_adapter, lora_config, merge_adapter

pytestmark = pytest.mark.skipif(not available("cpu"), reason="bitsandbytes with CPU 4-bit support is not installed")

RELATIVE_UPDATE = 1e-2


@pytest.fixture(scope="module")
def qlora_policy(tiny_model):  # noqa: F811
    """A QLoRA policy as `build_model` makes it (4-bit base, computing in fp32 so that the
    comparison is exact to fp32 rounding), with a small update in every adapter."""
    config = lora_config(8, 16.0)
    policy = add_adapter(load_4bit(str(tiny_model), "fp32", "cpu"), config, quantized=True,
                         gradient_checkpointing=False).eval()
    dequantized = dequantized_weights(load_4bit(str(tiny_model), "fp32", "cpu"))
    generator = torch.Generator().manual_seed(5)
    for name, module in policy.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            weight = dequantized[name.removeprefix("base_model.model.") + ".weight"]
            with torch.no_grad():
                b.copy_(torch.randn(b.shape, generator=generator))
                delta = module.scaling["default"] * b @ a
                b.mul_(RELATIVE_UPDATE * weight.abs().median() / delta.abs().median())
    return policy, config


def test_the_merged_qlora_model_gives_the_trained_policys_log_probs(qlora_policy, tiny_model):  # noqa: F811
    policy, config = qlora_policy
    tokenizer = load_tokenizer(str(tiny_model))
    pairs = choice_pairs()
    adapter = adapter_state(policy, policy.state_dict())
    with torch.no_grad():
        trained = torch.stack(pair_logps(policy, tokenizer, pairs))
        with policy.disable_adapter():
            without_update = torch.stack(pair_logps(policy, tokenizer, pairs))
        merged = merge_adapter(str(tiny_model), adapter, config, four_bit="fp32", device="cpu").eval()
        saved = torch.stack(pair_logps(merged, tokenizer, pairs))
        into_original = merge_adapter(str(tiny_model), adapter, config).eval()  # the old merge: into W, not Ŵ
        wrong = torch.stack(pair_logps(into_original, tokenizer, pairs))
    update = (trained - without_update).abs().max().item()
    assert torch.allclose(saved, trained, atol=1e-4), (saved - trained).abs().max()
    assert update > 10 * 1e-4  # the update is far above the tolerance
    assert (wrong - trained).abs().max() > update  # merging into W misses by more than the update itself
