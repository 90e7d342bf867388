"""Merging a LoRA adapter trained on a bf16 base keeps the update, and the adapter saved
unmerged computes what the merged model computes.

The adapter is given an update of the size a short run produces, about 1e-3 of
each weight: well below half a bf16 step of the weight (2^-9 to 2^-8 of it), so
a merge in bf16 would round most of it away and save the base model again.
"""

import pytest
import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from helpers import choice_pairs, tiny_model  # noqa: F401  (fixture)
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import pair_logps
from riskdpo.training.lora import adapter_state, add_adapter, lora_config, merge_adapter, save_adapter, save_plain_model

pytestmark = pytest.mark.floor  # LoRA through peft: CI runs it again at the floor versions (peft 0.13)

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
    model = merge_adapter(str(tiny_model), adapter_state(policy, policy.state_dict()), config)
    target = tmp_path_factory.mktemp("final-model")
    save_plain_model(model, load_tokenizer(str(tiny_model)), target)
    stored = load_file(target / "model.safetensors")
    return policy, deltas, stored, load_model(str(target), precision="fp32").eval(), load_model(str(tiny_model), precision="bf16")


def test_the_saved_model_keeps_the_update_in_every_adapted_weight(merged, tiny_model):  # noqa: F811
    _, deltas, stored, _, base = merged
    base_weights = base.state_dict()
    on_disk = load_file(tiny_model / "model.safetensors")
    for name, delta in deltas.items():
        saved = stored[name] - on_disk[name]
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
    # the same update on the base as stored (fp32), unmerged -> equal to fp32 rounding, and the
    # adapter's effect is far larger than that
    exact_policy = add_adapter(load_model(str(tiny_model), precision="fp32"), lora_config(8, 16.0), quantized=False,
                               gradient_checkpointing=False).eval()
    set_peft_model_state_dict(exact_policy, adapter_state(policy, policy.state_dict()))
    exact = torch.stack(pair_logps(exact_policy, tokenizer, pairs))
    with exact_policy.disable_adapter():
        without_update = torch.stack(pair_logps(exact_policy, tokenizer, pairs))
    assert torch.allclose(saved, exact, atol=1e-5)
    assert (exact - without_update).abs().max() > 30 * 1e-5


def test_weights_lora_does_not_adapt_are_saved_as_stored(merged, tiny_model):  # noqa: F811
    """The base is stored in fp32 and trained in bf16: the merge adds the update to the stored
    weights, so the embeddings, norms and head come out exactly as they were on disk, not
    rounded to bf16 as the training precision loaded them."""
    _, deltas, stored, _, _ = merged
    on_disk = load_file(tiny_model / "model.safetensors")
    untouched = [name for name in on_disk if name not in deltas]
    assert {"model.embed_tokens.weight", "model.final_layernorm.weight", "lm_head.weight"} <= set(untouched)
    for name in untouched:
        assert torch.equal(stored[name], on_disk[name]), name
    # and the base differs from its bf16 rounding, so the check could fail
    embedding = on_disk["model.embed_tokens.weight"]
    assert not torch.equal(embedding.bfloat16().float(), embedding)


@pytest.fixture(scope="module")
def saved_adapter(merged, tiny_model, tmp_path_factory):  # noqa: F811
    """The policy's adapter saved in PEFT format, and its folder."""
    policy = merged[0]
    target = tmp_path_factory.mktemp("final-adapter")
    save_adapter(adapter_state(policy, policy.state_dict()), policy.peft_config["default"], str(tiny_model),
                 load_tokenizer(str(tiny_model)), target)
    return target


def test_the_adapter_is_saved_in_peft_format(saved_adapter, merged, tiny_model):  # noqa: F811
    """`PeftModel.from_pretrained(base, folder)` loads it, and base + adapter unmerged gives the merged
    model's log-probs in fp32 (to 1e-5: the two sum the same products in another order)."""
    from peft import PeftModel

    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in saved_adapter.iterdir()}
    assert not (saved_adapter / "README.md").exists()  # no card of peft's own: riskdpo's writer owns the folder
    unmerged = PeftModel.from_pretrained(load_model(str(tiny_model), precision="fp32"), str(saved_adapter)).eval()
    tokenizer = load_tokenizer(str(saved_adapter))
    pairs = choice_pairs()
    final = merged[3]
    assert torch.allclose(torch.stack(pair_logps(unmerged, tokenizer, pairs)),
                          torch.stack(pair_logps(final, tokenizer, pairs)), atol=1e-5)


def adapted_layer_inputs(model, tokenizer) -> dict[str, torch.Tensor]:
    """The inputs each LoRA layer of `model` receives on the pairs' prompts (bf16)."""
    inputs, hooks = {}, []

    def keep(name: str, args: tuple) -> None:
        inputs[name] = args[0].detach().reshape(-1, args[0].shape[-1])

    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            hooks.append(module.register_forward_pre_hook(lambda _, args, name=name: keep(name, args)))
    ids = tokenizer([pair["prompt"] for pair in choice_pairs()[:4]], return_tensors="pt", padding=True).input_ids
    with torch.no_grad():
        model(ids)
    for hook in hooks:
        hook.remove()
    return inputs


def test_in_bf16_the_unmerged_update_survives_where_a_merge_rounds_it_away(saved_adapter, tiny_model, tmp_path):  # noqa: F811
    """On a base stored in bf16, each adapted layer's output change is compared with the exact
    update x·ΔWᵀ (float64) on the inputs the layer really receives, as ‖change − update‖/‖update‖
    (0: exact; 1: no better than leaving the layer unchanged):

    - unmerged (base in bf16, adapter in fp32, as eval-choices scores an adapter): peft adds ΔW·x
      to the bf16 output and rounds once; measured 0.77-0.82 on the 12 layers (2026-12, this
      tiny model): the rounding of each output is noise, but the update is there;
    - merged in bf16: W + ΔW rounded weight by weight loses most of ΔW (below half a bf16 step
      of W) and adds rounding noise of its own; measured 1.55-1.83: worse than no update.

    Only fp32 (the merged fp32 model, or the adapter on an fp32 base) keeps the update exactly.
    """
    from peft import PeftModel

    base_dir = tmp_path / "bf16-base"
    load_model(str(tiny_model), precision="bf16").save_pretrained(base_dir)
    unmerged = PeftModel.from_pretrained(load_model(str(base_dir), precision="bf16"), str(saved_adapter)).eval()
    inputs = adapted_layer_inputs(unmerged, load_tokenizer(str(tiny_model)))
    errors = {"unmerged": [], "merged": []}
    with torch.no_grad():
        for name, module in unmerged.named_modules():
            if name not in inputs:
                continue
            x, weight = inputs[name], module.base_layer.weight
            delta = module.get_delta_weight("default").double()
            exact = x.double() @ delta.T
            base_out = module.base_layer(x).double()
            changes = {"unmerged": module(x).double() - base_out,
                       "merged": torch.nn.functional.linear(x, (weight.double() + delta).bfloat16(), module.base_layer.bias).double() - base_out}
            for kind, change in changes.items():
                errors[kind].append(((change - exact).norm() / exact.norm()).item())
    assert len(errors["unmerged"]) >= 8
    assert max(errors["unmerged"]) < 0.9, errors  # closer to the update than no change
    assert min(errors["merged"]) > 1.0, errors  # worse than no update at all
