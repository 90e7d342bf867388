"""What a LoRA run saves, on a real bf16 run of the tiny model: final-model (the update
merged into the base as stored on disk) and final-adapter (PEFT format), which compute the
same function in fp32, and a run folder that eval-choices scores through its adapter."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers import choice_pairs, pairs_path, tiny_model  # noqa: F401  (fixtures)
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.evaluation.evaluate import EvalOptions, evaluate_choices
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import pair_logps
from riskdpo.training.config import TrainConfig
from riskdpo.training.run import train

pytestmark = pytest.mark.floor  # LoRA through peft: CI runs it again at the floor versions (peft 0.13)


@pytest.fixture(scope="module")
def bf16_run(tiny_model, pairs_path, tmp_path_factory):  # noqa: F811
    """A LoRA run in bf16 on a base stored in fp32."""
    out = tmp_path_factory.mktemp("bf16-lora") / "run"
    train(TrainConfig(dataset=str(pairs_path), output_dir=str(out), model=str(tiny_model), precision="bf16",
                      epochs=1, lr=5e-3, seed=3, max_length=128, progress=False))
    return out


def test_a_bf16_run_saves_the_weights_lora_does_not_adapt_as_stored(bf16_run, tiny_model):  # noqa: F811
    """Embeddings, norms and head of final-model equal the base on disk exactly; before the fix
    they came out rounded to bf16, the precision the run loaded the base in."""
    saved = load_file(bf16_run / "final-model" / "model.safetensors")
    on_disk = load_file(tiny_model / "model.safetensors")
    adapted = {name for name in saved if any(part in name for part in ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"))
               and "layers." in name and name.endswith(".weight")}
    untouched = set(on_disk) - adapted
    assert {"model.embed_tokens.weight", "model.final_layernorm.weight", "lm_head.weight"} <= untouched
    for name in untouched:
        assert torch.equal(saved[name], on_disk[name]), name
    assert not torch.equal(on_disk["lm_head.weight"].bfloat16().float(), on_disk["lm_head.weight"])  # could fail
    assert all(not torch.equal(saved[name], on_disk[name]) for name in adapted)  # the update is in


def test_the_adapter_beside_final_model_computes_the_same_in_fp32(bf16_run, tiny_model):  # noqa: F811
    from peft import PeftModel

    adapter = bf16_run / "final-adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model) and config["peft_type"] == "LORA"
    assert (adapter / "adapter_model.safetensors").is_file()
    unmerged = PeftModel.from_pretrained(load_model(str(tiny_model), precision="fp32"), str(adapter)).eval()
    merged = load_model(str(bf16_run / "final-model"), precision="fp32").eval()
    tokenizer = load_tokenizer(str(adapter))
    pairs = choice_pairs()
    with torch.no_grad():
        with_adapter = torch.stack(pair_logps(unmerged, tokenizer, pairs))
        assert torch.allclose(with_adapter, torch.stack(pair_logps(merged, tokenizer, pairs)), atol=1e-5)
        with unmerged.disable_adapter():
            base = torch.stack(pair_logps(unmerged, tokenizer, pairs))
    assert (with_adapter - base).abs().max() > 1e-3  # the update is far above the tolerance


def test_eval_choices_scores_a_run_folder_through_its_adapter(bf16_run):
    """A run folder as --model is its final-adapter, scored unmerged on the base: the same
    log-probs as final-model (fp32 on the CPU, to 1e-5)."""
    situations = generate_situations(GenerateSpec(situations=4, seed=3, sheet="low"))
    options = EvalOptions(precision="fp32")
    through_run = evaluate_choices([str(bf16_run)], situations, options=options)
    merged = evaluate_choices([str(bf16_run / "final-model")], situations, options=options)
    (model, records), = through_run.records.items()
    assert model == str(bf16_run / "final-adapter") and through_run.report["precision"] == "fp32"
    for adapter_record, merged_record in zip(records, merged.records[str(bf16_run / "final-model")]):
        assert adapter_record["logps"] == pytest.approx(merged_record["logps"], abs=1e-5)
