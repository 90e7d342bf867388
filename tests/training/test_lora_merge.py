"""Merging a LoRA adapter trained on a bf16 base keeps the update.

The adapter is given an update of the size a short run produces, about 1e-3 of
each weight: well below half a bf16 step of the weight (2^-9 to 2^-8 of it), so
a merge in bf16 would round most of it away and save the base model again.
"""

import pytest
import torch
from safetensors.torch import load_file

from helpers import choice_pairs, tiny_model  # noqa: F401  (fixture)
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import pair_logps
from riskdpo.training.lora import adapter_state, add_adapter, lora_config, merge_adapter, save_plain_model

RELATIVE_UPDATE = 1e-3


def give_small_update(policy) -> dict[str, torch.Tensor]:
    """Set every lora_B so that ΔW = scale·B·A is about RELATIVE_UPDATE of W's typical entry;
    returns ΔW (fp32) by base weight name."""
    generator = torch.Generator().manual_seed(5)
    deltas = {}
    for name, module in policy.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
        scale = module.scaling["default"]
        base = module.base_layer.weight.float()
        with torch.no_grad():
            b.copy_(torch.randn(b.shape, generator=generator))
            delta = scale * b.float() @ a.float()
            b.mul_(RELATIVE_UPDATE * base.abs().median() / delta.abs().median())
        deltas[name.removeprefix("base_model.model.") + ".weight"] = scale * b.detach().float() @ a.detach().float()
    assert deltas
    return deltas


@pytest.fixture(scope="module")
def merged(tiny_model, tmp_path_factory):  # noqa: F811
    """(policy on a bf16 base, its adapter's ΔW by weight name, the saved final model's weights as stored,
    the final model loaded in fp32, the bf16 base)."""
    config = lora_config(8, 16.0)
    policy = add_adapter(load_model(str(tiny_model), precision="bf16"), config, quantized=False,
                         gradient_checkpointing=False).eval()
    deltas = give_small_update(policy)
    model = merge_adapter(str(tiny_model), adapter_state(policy, policy.state_dict()), config, precision="bf16")
    target = tmp_path_factory.mktemp("final-model")
    save_plain_model(model, load_tokenizer(str(tiny_model)), target)
    stored = load_file(target / "model.safetensors")
    return policy, deltas, stored, load_model(str(target), precision="fp32").eval(), load_model(str(tiny_model), precision="bf16")


def test_the_saved_model_keeps_the_update_in_every_adapted_weight(merged):
    _, deltas, stored, _, base = merged
    base_weights = base.state_dict()
    for name, delta in deltas.items():
        saved = stored[name].float() - base_weights[name].float()
        kept = (saved != 0).float().mean().item()
        assert kept >= 0.99, f"{name}: the update survives in only {kept:.1%} of the entries"
        assert stored[name].dtype == torch.float32, name
        assert torch.allclose(saved, delta, rtol=1e-3, atol=1e-8), name  # atol: a few fp32 steps of W
    # in bf16 most of it would be gone: the test's update is below bf16's resolution
    rounded = [(base_weights[n].float() + d).to(torch.bfloat16).float() - base_weights[n].float() for n, d in deltas.items()]
    assert sum((r != 0).sum().item() for r in rounded) < 0.5 * sum(d.numel() for d in deltas.values())


def test_the_saved_model_gives_the_policys_log_probs(merged, tiny_model):  # noqa: F811
    policy, _, _, final, _ = merged
    tokenizer = load_tokenizer(str(tiny_model))
    pairs = choice_pairs()
    saved = torch.stack(pair_logps(final, tokenizer, pairs))
    # as training computed them: bf16 base, fp32 adapter -> equal within bf16's resolution
    trained = torch.stack(pair_logps(policy, tokenizer, pairs))
    assert torch.allclose(saved, trained, rtol=2e-2, atol=5e-2)
    # the same function in fp32 -> equal to fp32 rounding, and the adapter's effect is far larger than that
    with policy.disable_adapter():
        without_update = torch.stack(pair_logps(policy.float(), tokenizer, pairs))
    exact = torch.stack(pair_logps(policy.float(), tokenizer, pairs))
    assert torch.allclose(saved, exact, atol=1e-5)
    assert (exact - without_update).abs().max() > 30 * 1e-5
