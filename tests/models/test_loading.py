"""What `--precision auto` resolves to: decided from the device's capabilities, passed in."""

import pytest

from helpers import tiny_model  # noqa: F401  (fixture)

from riskdpo.core.errors import UserError
from riskdpo.models.loading import auto_precision, native_bf16_support, resolve_precision


@pytest.mark.parametrize(
    ("gpu", "native_bf16", "expected"),
    [
        (True, True, "bf16"),  # A100, H100: bf16 tensor cores
        (True, False, "fp16"),  # T4, V100: bf16 only emulated -> fp16 with a loss scaler
        (False, False, "fp32"),  # the CPU
        (False, True, "fp32"),
    ],
)
def test_auto_precision_uses_bf16_only_where_the_gpu_computes_it(gpu, native_bf16, expected):
    assert auto_precision(gpu, native_bf16=native_bf16) == expected
    assert auto_precision(gpu, native_bf16=native_bf16, stored="bf16") == expected


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_precision_keeps_weights_stored_in_fp32_in_fp32(native_bf16):
    """A merged LoRA model is stored in fp32 so its update survives; auto must not round it away on a GPU."""
    assert auto_precision(True, native_bf16=native_bf16, stored="fp32") == "fp32"


def test_stored_precision_reads_the_config(tiny_model, tmp_path):  # noqa: F811
    from riskdpo.models.loading import load_model, stored_precision

    assert stored_precision(str(tiny_model)) == "fp32"
    load_model(str(tiny_model), precision="bf16").save_pretrained(tmp_path / "bf16")
    assert stored_precision(str(tmp_path / "bf16")) == "bf16"
    assert stored_precision(str(tmp_path / "missing")) is None


def test_resolve_precision_on_the_cpu():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp16", "cuda:0") == "fp16"
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(UserError, match="--precision fp8"):
        resolve_precision("fp8", "cpu")


@pytest.mark.gpu
def test_native_bf16_support_on_this_gpu():
    """On a GPU: native bf16 exactly from compute capability 8.0 on (emulation does not count)."""
    import torch

    assert native_bf16_support() == (torch.cuda.get_device_capability()[0] >= 8)
    assert resolve_precision("auto", "cuda") == ("bf16" if native_bf16_support() else "fp16")


def test_the_cpu_suite_sees_no_gpu_in_process_or_subprocess():
    """tests/conftest.py and helpers.SUBPROCESS_ENV hide GPUs, so `auto` means fp32 here even on a CUDA machine."""
    import os
    import subprocess
    import sys

    import torch

    from helpers import SUBPROCESS_ENV

    assert not torch.cuda.is_available()
    code = "import torch; from riskdpo.models.loading import resolve_precision; print(torch.cuda.device_count(), resolve_precision('auto', 'cuda' if torch.cuda.is_available() else 'cpu'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **SUBPROCESS_ENV}, check=True)
    assert result.stdout.split() == ["0", "fp32"]


def test_phi_models_load_with_the_fused_gelu_same_values_less_saved(tiny_model):  # noqa: F811
    """gelu_new (phi-2's) -> gelu_pytorch_tanh: equal outputs, three MLP-wide tensors fewer kept for backward."""
    import torch
    from transformers import AutoModelForCausalLM

    from riskdpo.models.loading import load_model

    original = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    loaded = load_model(str(tiny_model))
    assert original.config.hidden_act == "gelu_new"
    assert loaded.config.hidden_act == "gelu_pytorch_tanh"
    ids = torch.arange(3, 67).view(2, 32)

    def forward_saving(model):
        saved = {}

        def keep(tensor):
            saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            logits = model(input_ids=ids).logits
        return logits, sum(saved.values())

    (before, saved_before), (after, saved_after) = forward_saving(original), forward_saving(loaded)
    assert torch.allclose(before, after, atol=1e-5)
    config = loaded.config
    assert saved_before - saved_after == 3 * ids.numel() * config.intermediate_size * config.num_hidden_layers * 4


def test_the_installed_transformers_is_in_the_tested_range():
    """pyproject states the transformers versions riskdpo is tested with; CI runs on one of them."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement

    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    (line,) = re.findall(r'^\s*"(transformers[^"]*)"', pyproject, flags=re.M)
    requirement = Requirement(line)
    assert {spec.operator for spec in requirement.specifier} == {">=", "<"}  # a lower and an upper bound
    assert requirement.specifier.contains(version("transformers"))


@pytest.mark.parametrize("command", ["eval-choices", "sample-pairs"])
def test_every_loader_names_a_missing_model_folder(tmp_path, command):
    # the same check as train's (`check_model_path`), made by load_tokenizer and load_model:
    # never the hub client's "repo id" message
    from click.testing import CliRunner

    from riskdpo.cli import main
    from riskdpo.data.generate import GenerateSpec, generate_situations
    from riskdpo.data.situations import save_situations

    situations = tmp_path / "situations.json"
    save_situations(generate_situations(GenerateSpec(situations=4, seed=1)), situations)
    missing = str(tmp_path / "no" / "such" / "model")
    out = tmp_path / "out" / ("report.json" if command == "eval-choices" else "pairs.jsonl")
    result = CliRunner().invoke(main, [command, "--model", missing, "--situations", str(situations), "-o", str(out),
                                       "--no-progress"])  # fmt: skip
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"--model {missing}: no such model folder" in result.stderr
    assert not (tmp_path / "out").exists()
