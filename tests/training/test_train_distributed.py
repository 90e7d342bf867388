"""Two real CPU processes (torchrun, gloo) take the same steps as one process
with the same global batch: same metrics, same final weights and adapter; their
process group has riskdpo's timeout (`PROCESS_GROUP_TIMEOUT`), not gloo's default."""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from helpers import SUBPROCESS_ENV, assert_same_run, choice_pairs, read_jsonl, tiny_model, write_pairs  # noqa: F401
from riskdpo.training.config import TrainConfig
from riskdpo.training.processes import PROCESS_GROUP_TIMEOUT
from riskdpo.training.run import train

OPTIONS = {"epochs": 2, "lr": 5e-3, "lora_dropout": 0.0, "max_length": 128, "seed": 7}


def test_two_processes_match_one_process(tiny_model, tmp_path):  # noqa: F811
    # 13 pairs: the last global batch of 4 holds one pair, so process 1 gets an
    # empty slice and must still join the gradient all-reduce.
    dataset = write_pairs(tmp_path / "pairs.jsonl", choice_pairs()[:13])
    single = tmp_path / "single"
    train(TrainConfig(dataset=str(dataset), output_dir=str(single), model=str(tiny_model), val=str(dataset),
                      batch_size=4, progress=False, **OPTIONS))
    accumulated = tmp_path / "accumulated"
    train(TrainConfig(dataset=str(dataset), output_dir=str(accumulated), model=str(tiny_model), val=str(dataset),
                      batch_size=2, grad_accum=2, progress=False, **OPTIONS))

    pair = tmp_path / "two-processes"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "riskdpo.cli", "train", "--dataset", str(dataset), "--val", str(dataset), "--output-dir", str(pair),
        "--model", str(tiny_model), "--batch-size", "2", "--no-progress",
        *[f"--{key.replace('_', '-')}={value}" for key, value in OPTIONS.items()],
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **SUBPROCESS_ENV})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(pair / "final-model")  # printed once, by rank 0

    run = json.loads((pair / "run.json").read_text())
    assert run["world_size"] == 2 and run["global_batch_size"] == 4 and run["steps"] == 8
    assert run["process_group_timeout_s"] == PROCESS_GROUP_TIMEOUT.total_seconds() != 30 * 60  # gloo's default
    assert json.loads((single / "run.json").read_text())["steps"] == 8
    assert_same_run(single, pair)
    adapters = [load_file(run_dir / "final-adapter" / "adapter_model.safetensors") for run_dir in (single, pair)]
    assert adapters[0].keys() == adapters[1].keys()
    assert all(torch.allclose(adapters[0][key], adapters[1][key], atol=1e-5) for key in adapters[0])
    assert_same_run(single, accumulated)
    assert read_jsonl(single / "metrics.jsonl")[-1]["val/loss"] < read_jsonl(single / "metrics.jsonl")[0]["val/loss"]
