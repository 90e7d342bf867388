"""`riskdpo train --dry-run` prints the run's memory estimate before any weights load,
and writes nothing: no output folder, no lock, no file anywhere."""

import fcntl
import os
import shutil

from helpers import pairs_path, run_cli, tiny_model, tree_digest  # noqa: F401
from riskdpo.models.loading import load_tokenizer
from riskdpo.training.memory import estimate_memory, format_estimate, model_config
from riskdpo.training.pair_data import load_pairs


def test_dry_run_prints_the_estimate_and_writes_nothing(tiny_model, pairs_path, tmp_path):  # noqa: F811
    model = tmp_path / "model-without-weights"
    shutil.copytree(tiny_model, model)
    (model / "model.safetensors").unlink()  # a run that loaded weights would fail
    locked = tmp_path / "locked-run"  # an output folder another process holds
    locked.mkdir()
    before = tree_digest(tmp_path)
    handle = os.open(locked, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        results = {
            out: run_cli("train", "--dataset", str(pairs_path), "--output-dir", str(tmp_path / out), "--model", str(model),
                         "--full", "--batch-size", "3", "--max-length", "96", "--gradient-checkpointing", "--dry-run")
            for out in ("new-run", "locked-run")
        }
    finally:
        os.close(handle)
    assert tree_digest(tmp_path) == before  # no folder made, nothing written
    tokenizer = load_tokenizer(str(tiny_model))
    completions = [pair[key] for pair in load_pairs(pairs_path) for key in ("chosen", "rejected")]
    longest = max(len(tokenizer(text, add_special_tokens=False).input_ids) for text in completions) + 1
    expected = format_estimate(estimate_memory(model_config(str(tiny_model)), mode="full", batch_size=3, max_length=96,
                                               completion_length=longest, gradient_checkpointing=True,
                                               precision="bf16"))
    for result in results.values():
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected + "\n"
        assert "full, batch 3 x 96 tokens" in result.stdout and "gradient checkpointing" in result.stdout



def test_a_qlora_dry_run_shows_the_fp32_casts(tiny_model, pairs_path, tmp_path):  # noqa: F811
    """peft's prepare_model_for_kbit_training widens embeddings, lm_head and norms to fp32, and
    their fp32 outputs make the 4-bit layers' activations fp32: both are counted and shown."""
    result = run_cli("train", "--dataset", str(pairs_path), "--output-dir", str(tmp_path / "run"), "--model",
                     str(tiny_model), "--load-in-4bit", "--dry-run")
    assert result.returncode == 0, result.stderr
    config = model_config(str(tiny_model))
    qlora, lora = (estimate_memory(config, mode=mode) for mode in ("qlora", "lora"))
    from riskdpo.training.memory import model_shape

    shape = model_shape(config)
    unquantized = shape.parameters - sum(n_in * n_out for _, n_in, n_out in shape.block_linears)
    assert qlora.fp32_casts == 4 * unquantized and lora.fp32_casts == 0
    assert qlora.activations > 1.9 * lora.activations  # the blocks in fp32, not bf16
    cast_line = next(line for line in result.stdout.splitlines() if "of which fp32 casts" in line)
    assert "embeddings, lm_head, norms" in cast_line
