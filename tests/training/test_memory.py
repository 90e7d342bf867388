"""The memory estimate against what real models hold on the CPU.

Parameter, gradient and optimizer bytes must be exact (a real adapter or full
model, a real backward pass and a real AdamW step); activations are compared
with the bytes autograd saves in a real packed pass under bf16 autocast, on the
tiny phi model and a tiny llama (gated MLP); docs/gpu.md's table must be the formula's.
"""

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

from helpers import tiny_model  # noqa: F401  (fixture)
from riskdpo.core.errors import UserError
from riskdpo.models.loading import load_model
from riskdpo.models.logps import CompletionBatch, batch_logps
from riskdpo.training.lora import add_adapter, freeze_first_blocks, lora_config
from riskdpo.training.memory import KNOWN_SHAPES, estimate_memory, format_estimate, model_config

README = (Path(__file__).resolve().parents[2] / "docs" / "gpu.md").read_text()


def random_batch(groups: int, prompt_len: int, completion_len: int) -> CompletionBatch:
    generator = torch.Generator().manual_seed(0)
    return CompletionBatch(
        torch.randint(1, 400, (groups, prompt_len), generator=generator), torch.ones(groups, prompt_len, dtype=torch.long),
        torch.randint(1, 400, (2 * groups, completion_len), generator=generator),
        torch.ones(2 * groups, completion_len, dtype=torch.long), 2, 0,
    )


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def step_and_measure(model, batch):
    """(weight bytes, gradient bytes, AdamW state bytes) after one real step."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    batch_logps(model, batch)[0].sum().backward()
    gradients = nbytes(p.grad for p in trainable)
    optimizer.step()
    state = nbytes(t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.numel() > 1)
    return nbytes(model.parameters()), gradients, state


@pytest.mark.parametrize("rank", [4, 16])
def test_lora_parameter_bytes_are_exact(tiny_model, rank):  # noqa: F811
    model = add_adapter(load_model(str(tiny_model), precision="bf16"), lora_config(rank, 2.0 * rank),
                        quantized=False, gradient_checkpointing=False).train()
    weights, gradients, optimizer = step_and_measure(model, random_batch(2, 20, 3))
    estimate = estimate_memory(AutoConfig.from_pretrained(tiny_model), mode="lora", lora_rank=rank, precision="bf16")
    assert estimate.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (estimate.weights, estimate.gradients, estimate.optimizer) == (weights, gradients, optimizer)


def test_lora_on_named_targets_counts_only_those(tiny_model):  # noqa: F811
    model = add_adapter(load_model(str(tiny_model)), lora_config(8, 16.0, targets="q_proj,v_proj"),
                        quantized=False, gradient_checkpointing=False)
    estimate = estimate_memory(AutoConfig.from_pretrained(tiny_model), mode="lora", lora_rank=8, lora_targets="q_proj,v_proj")
    assert estimate.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


@pytest.mark.parametrize("freeze", [0, 1])
def test_full_fine_tuning_parameter_bytes_are_exact(tiny_model, freeze):  # noqa: F811
    model = load_model(str(tiny_model), precision="fp32").train()
    freeze_first_blocks(model, freeze)
    weights, gradients, optimizer = step_and_measure(model, random_batch(2, 20, 3))
    estimate = estimate_memory(AutoConfig.from_pretrained(tiny_model), mode="full", precision="fp32", freeze_layers=freeze)
    assert (estimate.weights, estimate.gradients, estimate.optimizer) == (weights, gradients, optimizer)
    bf16 = estimate_memory(AutoConfig.from_pretrained(tiny_model), mode="full", precision="bf16", freeze_layers=freeze)
    linear = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear) and m.weight.requires_grad]
    assert bf16.weights - weights == 2 * sum(w.numel() for w in linear)  # autocast's bf16 copies


def saved_bytes(model, batch) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of a packed pass (parameters excluded)."""
    saved = {}
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def keep(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor), torch.autocast("cpu", dtype=torch.bfloat16):
        batch_logps(model, batch)
    return sum(size for pointer, size in saved.items() if pointer not in parameters)


def tiny_llama(directory: Path) -> Path:
    config = LlamaConfig(vocab_size=512, hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                         num_attention_heads=6, num_key_value_heads=6, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("mode", ["lora", "full"])
@pytest.mark.parametrize("architecture", ["phi", "llama"])
@pytest.mark.parametrize(("groups", "prompt_len", "completion_len"), [(2, 200, 8), (4, 100, 60)])
def test_activation_estimate_is_within_ten_percent_of_the_saved_bytes(
    tiny_model, tmp_path, mode, architecture, groups, prompt_len, completion_len  # noqa: F811
):
    path = tiny_model if architecture == "phi" else tiny_llama(tmp_path / "llama")
    model = load_model(str(path), precision="bf16" if mode == "lora" else "fp32")
    if mode == "lora":
        model = add_adapter(model, lora_config(16, 32.0), quantized=False, gradient_checkpointing=False)
    measured = saved_bytes(model.train(), random_batch(groups, prompt_len, completion_len))
    estimate = estimate_memory(AutoConfig.from_pretrained(path), mode=mode, batch_size=groups,
                               max_length=prompt_len + completion_len, completion_length=completion_len)
    predicted = estimate.activations + estimate.logits + estimate.mask
    assert 0.9 < measured / predicted < 1.1


def test_gradient_checkpointing_keeps_one_layer_input_per_layer():
    plain = estimate_memory(KNOWN_SHAPES["microsoft/phi-2"], mode="lora")
    checkpointed = estimate_memory(KNOWN_SHAPES["microsoft/phi-2"], mode="lora", gradient_checkpointing=True)
    tokens = 4 * (512 + 8)
    assert checkpointed.activations < plain.activations / 10
    assert checkpointed.activations > tokens * 32 * 2 * 2560  # at least the bf16 input of every layer
    assert checkpointed.weights == plain.weights and checkpointed.optimizer == plain.optimizer


def test_format_estimate_prints_every_part_and_the_total():
    estimate = estimate_memory(KNOWN_SHAPES["microsoft/phi-2"], mode="full", batch_size=2, max_length=256)
    text = format_estimate(estimate)
    assert "full, batch 2 x 256 tokens" in text
    assert f"{estimate.trainable:,} trainable parameters" in text
    for label, value in [("weights", estimate.weights), ("optimizer (AdamW)", estimate.optimizer),
                         ("total", estimate.total)]:
        assert re.search(rf"^  {re.escape(label)} +{value / 1024**3:.2f} GiB", text, flags=re.M), label


def test_model_config_offline_falls_back_to_known_shapes_and_names_unknown_models():
    assert model_config("microsoft/phi-2").hidden_size == 2560
    with pytest.raises(UserError, match="no-such/model: cannot read the model's config"):
        model_config("no-such/model")


def readme_rows() -> list[str]:
    """docs/gpu.md's memory table, as the formula computes it."""
    phi2 = KNOWN_SHAPES["microsoft/phi-2"]
    rows = []
    for label, mode, checkpointing in [("LoRA (default), bf16", "lora", False), ("LoRA, `--gradient-checkpointing`", "lora", True),
                                       ("QLoRA, `--load-in-4bit`", "qlora", False), ("`--full`, bf16 autocast", "full", False),
                                       ("`--full`, `--gradient-checkpointing`", "full", True)]:
        label_run = estimate_memory(phi2, mode=mode, gradient_checkpointing=checkpointing)
        cot_run = estimate_memory(phi2, mode=mode, gradient_checkpointing=checkpointing, completion_length=256)
        state = label_run.weights + label_run.gradients + label_run.optimizer
        rows.append(f"| {label} | {state / 1024**3:.1f} | {label_run.activations / 1024**3:.1f} | "
                    f"{label_run.total / 1024**3:.1f} | {cot_run.total / 1024**3:.1f} |")
    return rows


def test_the_readme_memory_table_is_the_formulas():
    for row in readme_rows():
        assert row in README.splitlines(), row
