"""riskdpo's side of the training benchmark: `riskdpo train` (the library call the command makes), timed.

It runs `riskdpo.training.run.train(TrainConfig(...))` with the settings the
comparison holds equal (see `baseline_train.py`): one epoch over a pairs file
of exactly steps x batch pairs, so the run takes exactly ``--steps`` optimiser
steps; linear schedule without warm-up; clipping at 1.0; sigmoid DPO; LoRA on
every linear layer with dropout 0, or full fine-tuning; metrics logged every
step. The training loop logs pairs/s for each step in metrics.jsonl, so step
i took ``batch / (pairs/s)_i`` seconds; the steady-state window is the sum
over the steps after ``warmup``, as on TRL's side. One-time costs (model load,
tokenisation, the reference precompute, saving the merged model) are what the
process spends outside the loop; run.json times the reference precompute.

    python benchmarks/riskdpo_train.py --model DIR --pairs pairs.jsonl --steps 30 --out riskdpo.json
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from baseline_train import parser_with_shared_options
from riskdpo.core.fileio import write_json


def run_riskdpo(args: Any) -> dict[str, Any]:
    import torch

    from riskdpo.training.metrics import read_metrics
    from riskdpo.training.config import TrainConfig
    from riskdpo.training.run import train

    output = Path(tempfile.mkdtemp(prefix="riskdpo-bench-"))
    try:
        config = TrainConfig(
            dataset=args.pairs,
            output_dir=str(output / "run"),
            model=args.model,
            epochs=1,
            batch_size=args.batch_size,
            grad_accum=1,
            lr=args.lr,
            weight_decay=0.0,
            warmup_steps=0,
            scheduler="linear",
            max_grad_norm=1.0,
            seed=args.seed,
            beta=args.beta,
            loss="sigmoid",
            lora=args.finetune == "lora",
            lora_rank=args.lora_r,
            lora_alpha=float(args.lora_alpha),
            lora_dropout=0.0,
            lora_targets="all-linear",
            precision=args.precision,
            gradient_checkpointing=args.gradient_checkpointing,
            max_length=args.max_length,
            log_every=1,
            progress=False,
        )
        start = time.perf_counter()
        train(config)
        total_s = time.perf_counter() - start
        run = json.loads((output / "run" / "run.json").read_text(encoding="utf-8"))
        metrics = [record for record in read_metrics(output / "run" / "metrics.jsonl") if "pairs/s" in record]
    finally:
        shutil.rmtree(output, ignore_errors=True)
    batch = args.batch_size
    return {
        "side": "riskdpo",
        "steps": len(metrics),
        "total_s": total_s,
        "reference_s": run["timings"].get("reference_seconds"),
        "train_s": run["timings"].get("train_seconds"),
        "step_seconds": [batch / record["pairs/s"] for record in metrics],
        "losses": [record["loss"] for record in metrics],
        "prompt_format": run["prompt_format"],
        "precision": run["precision"],
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parser_with_shared_options(__doc__.splitlines()[0]).parse_args(argv)
    result = run_riskdpo(args)
    write_json(args.out, result)


if __name__ == "__main__":
    main()
