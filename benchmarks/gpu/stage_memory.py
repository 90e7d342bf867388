"""Stage 5, the memory estimate against the measured peak.

For each configuration, `riskdpo.training.memory.estimate_for_run` (what
``riskdpo train --dry-run`` prints, before anything loads) against
``torch.cuda.max_memory_allocated`` of a real run of the same configuration
on the phi-2-shaped model: LoRA, LoRA with gradient checkpointing, and full
fine-tuning, on label and on chain-of-thought pairs. The runs the train
stage made (LoRA on labels and on chain of thought, full on labels) are read
from its results; the others run here (`train_worker.py`, one process,
``memory_steps`` steps each; full fine-tuning on chain of thought at a smaller
batch so that it fits). A run that does not fit is recorded as such. The
estimate leaves out the CUDA context and fragmentation (its docstring says to
budget 10-20 % above it); the ratio measured / estimate says how good it is.
"""

from __future__ import annotations

import itertools
import json
import sys

from common import GPU_DIR, Context, SectionResult, Table, phi2_model, run_measured
from riskdpo.core.fileio import read_records, write_jsonl

GIB = 1024**3
#: (name, completions, LoRA, gradient checkpointing)
CONFIGS = (
    ("lora", "label", True, False),
    ("lora-checkpointing", "label", True, True),
    ("full", "label", False, False),
    ("lora", "cot", True, False),
    ("lora-checkpointing", "cot", True, True),
    ("full", "cot", False, False),
)


def pairs_file(ctx: Context, completions: str, count: int):
    from workloads import sample_pairs

    from settings import SAMPLE_WORKBOOK

    path = ctx.work / f"memory-{completions}-{count}.jsonl"
    if not path.exists():
        pairs = read_records(sample_pairs(ctx.work, SAMPLE_WORKBOOK, completions))
        write_jsonl(path, list(itertools.islice(itertools.cycle(pairs), count)))
    return path


def train_stage_peaks(ctx: Context) -> dict:
    """riskdpo's runs of the train stage by (mode, completions): their peak bytes (None on the CPU)."""
    path = ctx.out / "train.json"
    if not path.exists():
        return {}
    results = json.loads(path.read_text(encoding="utf-8"))["raw"]["results"]
    return {(r["finetune"], r["completions"]): r["raw"]["riskdpo"].get("peak_gpu_bytes") for r in results}


def run(ctx: Context) -> SectionResult:
    from riskdpo.training.config import TrainConfig
    from riskdpo.training.memory import estimate_for_run

    sizes = ctx.sizes
    model = phi2_model(ctx)
    reused = train_stage_peaks(ctx)
    specs, rows_in = [], []
    for name, completions, lora, checkpointing in CONFIGS:
        batch = sizes.train_batch if completions == "label" or lora else sizes.memory_cot_batch
        steps = sizes.train_steps if (name, completions) in reused and batch == sizes.train_batch else sizes.memory_steps
        fields = dict(dataset=str(pairs_file(ctx, completions, steps * batch)), model=str(model), epochs=1,
                      batch_size=batch, lr=5e-5, beta=0.1, warmup_steps=0, seed=0, lora=lora, lora_rank=8,
                      lora_alpha=16.0, gradient_checkpointing=checkpointing, max_length=sizes.train_max_length)
        estimate = estimate_for_run(TrainConfig(output_dir=str(ctx.work / "unused"), **fields))
        source = "train stage" if (name, completions) in reused and batch == sizes.train_batch else "this stage"
        if source == "this stage":
            specs.append(dict(fields, name=f"{name}-{completions}"))
        rows_in.append((name, completions, batch, checkpointing, estimate, source))
    measured = {}
    if specs and ctx.cuda:
        specs_path, out_path = ctx.work / "memory-specs.json", ctx.work / "memory-runs.json"
        specs_path.write_text(json.dumps(specs), encoding="utf-8")
        run_measured([sys.executable, str(GPU_DIR / "train_worker.py"), str(specs_path), str(out_path)])
        measured = {r["name"]: r for r in json.loads(out_path.read_text(encoding="utf-8"))["runs"]}
    elif specs:  # dry run: the same runs on the CPU prove the path; no GPU peak to compare
        specs_path, out_path = ctx.work / "memory-specs.json", ctx.work / "memory-runs.json"
        specs_path.write_text(json.dumps([dict(s, precision="fp32") for s in specs]), encoding="utf-8")
        run_measured([sys.executable, str(GPU_DIR / "train_worker.py"), str(specs_path), str(out_path)])
        measured = {r["name"]: r for r in json.loads(out_path.read_text(encoding="utf-8"))["runs"]}
    rows = []
    for name, completions, batch, checkpointing, estimate, source in rows_in:
        if source == "train stage":
            peak = reused[(name, completions)]
            note = "measured in the train stage" if peak else "train stage ran on the CPU: no GPU peak"
        else:
            result = measured.get(f"{name}-{completions}", {})
            peak = result.get("peak_gpu_bytes")
            note = result.get("error") or ("" if peak else "no GPU: ran on the CPU, no GPU peak")
        rows.append([name, completions, batch, estimate.max_length, estimate.completion_length, estimate.total / GIB,
                     peak / GIB if peak else None, peak / estimate.total if peak else None, note])
    return SectionResult(
        section="memory",
        title="GPU suite: memory estimate against measured peak (phi-2-shaped)",
        description=__doc__.split("\n\n", 1)[1].strip(),
        tables=[Table("riskdpo train --dry-run's estimate against torch.cuda.max_memory_allocated",
                      ["Mode", "Completions", "Batch", "Max length", "Longest completion", "Estimate GiB", "Measured GiB",
                       "Measured / estimate", "Note"], rows)],
        raw={"rows": [dict(zip(("mode", "completions", "batch", "max_length", "completion_length", "estimate_gib",
                                "measured_gib", "ratio", "note"), row)) for row in rows]},
    )
