"""The training baseline: TRL's `DPOTrainer` in its best configuration, timed step by step.

Best configuration (trl 1.16, `trl.DPOConfig`): reference log-probs
precomputed once before training (``precompute_ref_log_probs=True``, so no
reference forward per step and no second model in memory), LoRA through peft
(``peft_config``; the reference is the model with the adapter disabled), no
gradient checkpointing unless asked (TRL's default turns it on, which trades
speed for memory), dropout off, fused AdamW (TRL's default optimiser).
Everything the comparison holds equal is an option: the pairs file, model,
LoRA rank/alpha/targets, batch size, max length, learning rate and its linear
schedule without warm-up, gradient clipping, seed, number of steps, sigmoid
DPO loss and beta, precision (bf16 autocast on a GPU; LoRA on a bf16 base,
full fine-tuning on fp32 weights, as `riskdpo train` does).

Prompts are rendered exactly as `riskdpo train` renders them
(`riskdpo.pairs.prompting.render_prompt` with the run's prompt format, passed as
JSON) and given to TRL as plain text, so both trainers see the same tokens.

Timing: a callback stamps the end of every optimiser step (after a CUDA
synchronise on a GPU). The steady-state time is from the end of step
``warmup`` to the end of the last step; model load and the trainer's set-up
(tokenisation and the reference precompute) are timed separately.

    python benchmarks/baseline_train.py --model DIR --pairs pairs.jsonl --steps 30 --out trl.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.fileio import write_json


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_clock(device: str) -> Any:
    """A TrainerCallback recording when each optimiser step ends and each logged loss."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.step_ends: list[float] = []
            self.losses: dict[int, float] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            _synchronize(device)
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _synchronize(device)
            self.step_ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses[state.global_step] = float(logs["loss"])

    return StepClock()


def run_trl(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from riskdpo.models.loading import resolve_precision
    from riskdpo.pairs.prompting import PromptFormat, render_prompt

    bf16 = resolve_precision(args.precision, args.device) == "bf16"
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    weights = torch.bfloat16 if bf16 and args.finetune == "lora" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=weights).to(args.device)
    _synchronize(args.device)
    load_s = time.perf_counter() - start

    fmt = PromptFormat(**json.loads(args.prompt_format))
    pairs = [json.loads(line) for line in Path(args.pairs).read_text(encoding="utf-8").splitlines() if line.strip()]
    dataset = Dataset.from_list(
        [{"prompt": render_prompt(tokenizer, p["prompt"], fmt), "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    )
    lora = (
        LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        if args.finetune == "lora"
        else None
    )
    clock = step_clock(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        config = DPOConfig(
            output_dir=scratch,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=1,
            learning_rate=args.lr,
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            seed=args.seed,
            beta=args.beta,
            loss_type=["sigmoid"],
            max_length=args.max_length,
            precompute_ref_log_probs=True,
            gradient_checkpointing=args.gradient_checkpointing,
            bf16=bf16,
            use_cpu=args.device == "cpu",
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        start = time.perf_counter()
        trainer = DPOTrainer(
            model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora, callbacks=[clock]
        )
        _synchronize(args.device)
        setup_s = time.perf_counter() - start
        start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - start
    ends = clock.step_ends
    return {
        "side": "trl",
        "steps": len(ends),
        "load_s": load_s,
        "setup_s": setup_s,
        "train_s": train_s,
        "step_seconds": [b - a for a, b in zip([clock.begin, *ends[:-1]], ends)],
        "losses": [clock.losses.get(step) for step in range(1, len(ends) + 1)],
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else None,
    }


def parser_with_shared_options(description: str) -> argparse.ArgumentParser:
    """The options both training workers take (this one and `riskdpo_train.py`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, required=True, help="optimiser steps (the pairs file holds steps x batch pairs)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune", choices=("lora", "full"), default="lora")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 on a GPU that has it, else fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = parser_with_shared_options(__doc__.splitlines()[0])
    parser.add_argument("--prompt-format", required=True, help="JSON of riskdpo's PromptFormat, from the riskdpo run's run.json")
    args = parser.parse_args(argv)
    result = run_trl(args)
    write_json(args.out, result)


if __name__ == "__main__":
    main()
