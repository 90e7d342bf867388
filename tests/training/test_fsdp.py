"""FSDP2 full fine-tuning in two real CPU processes (torchrun, gloo) with the settings of
configs/fsdp.yaml takes the same steps as one plain process with the same global batch,
and its final model, gathered from the shards, loads in plain transformers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from helpers import SUBPROCESS_ENV, assert_same_run, choice_pairs, final_weights, tiny_model, write_pairs  # noqa: F401
from riskdpo.training.config import TrainConfig
from riskdpo.training.run import train

OPTIONS = {"epochs": 2, "lr": 5e-3, "max_length": 128, "seed": 7}
FSDP_CONFIG = Path(__file__).parents[2] / "configs" / "fsdp.yaml"


def fsdp_environment() -> dict[str, str]:
    """The variables `accelerate launch --config_file configs/fsdp.yaml` sets: ACCELERATE_USE_FSDP
    and one FSDP_* variable per fsdp_config key."""
    config = yaml.safe_load(FSDP_CONFIG.read_text())
    assert config["distributed_type"] == "FSDP"
    return {"ACCELERATE_USE_FSDP": "true",
            **{key.upper(): str(value).lower() if isinstance(value, bool) else str(value)
               for key, value in config["fsdp_config"].items()}}


def assert_same_fsdp_run(one: Path, other: Path) -> None:
    """Same final weights and metrics. The attention's key biases get an exactly zero
    gradient (a bias added to every key shifts all of a query's scores alike, which
    softmax ignores), so they move only by round-off that AdamW scales up to
    learning-rate size: they agree to 1e-4, every other weight to 1e-5."""
    assert_same_run(one, other, looser=("k_proj.bias",))


def test_fsdp_two_processes_match_one_process(tiny_model, tmp_path):  # noqa: F811
    dataset = write_pairs(tmp_path / "pairs.jsonl", choice_pairs()[:12])
    single = tmp_path / "single"
    train(TrainConfig(dataset=str(dataset), output_dir=str(single), model=str(tiny_model), val=str(dataset),
                      batch_size=4, lora=False, progress=False, **OPTIONS))

    sharded = tmp_path / "fsdp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "riskdpo.cli", "train", "--dataset", str(dataset), "--val", str(dataset), "--output-dir", str(sharded),
        "--model", str(tiny_model), "--batch-size", "2", "--full", "--no-progress",
        *[f"--{key.replace('_', '-')}={value}" for key, value in OPTIONS.items()],
    ]
    environment = {**os.environ, **SUBPROCESS_ENV, **fsdp_environment()}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]

    run = json.loads((sharded / "run.json").read_text())
    assert run["distributed"] == "FSDP" and run["world_size"] == 2 and run["global_batch_size"] == 4
    assert json.loads((single / "run.json").read_text())["distributed"] == "NO"
    assert_same_fsdp_run(single, sharded)

    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(sharded / "final-model").state_dict()
    saved = final_weights(sharded)
    initial = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in saved.items())
    assert any(not torch.equal(loaded[key], initial[key]) for key in saved)  # the gathered weights are the trained ones
