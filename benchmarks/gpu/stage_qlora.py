"""Stage 7 (optional: needs bitsandbytes, carried in a second call), QLoRA on the phi-2-shaped model.

One `riskdpo train --load-in-4bit` run on label pairs (`train_worker.py`,
``memory_steps`` steps, a validation split): its peak GPU memory against
`riskdpo.training.memory`'s QLoRA estimate, and the log-prob gap between the
saved model (the adapter merged into the full-precision base, loaded in fp32)
and the NF4 policy that trained (its last validation log-probs): the merge
cannot reproduce the NF4 rounding, so the gap is reported, not judged.
"""

from __future__ import annotations

import json
import sys

from common import GPU_DIR, Context, SectionResult, Table, phi2_model, run_measured
from riskdpo.core.fileio import read_records, write_jsonl

GIB = 1024**3


def run(ctx: Context) -> SectionResult:
    from stage_memory import pairs_file

    from riskdpo.training.config import TrainConfig
    from riskdpo.training.memory import estimate_for_run

    sizes = ctx.sizes
    train = pairs_file(ctx, "label", sizes.memory_steps * sizes.train_batch)
    val = ctx.work / "qlora-val.jsonl"
    write_jsonl(val, read_records(train)[:8])
    fields = dict(dataset=str(train), val=str(val), model=str(phi2_model(ctx)), epochs=1, batch_size=sizes.train_batch,
                  lr=5e-5, beta=0.1, warmup_steps=0, seed=0, lora_rank=8, lora_alpha=16.0, load_in_4bit=True,
                  max_length=sizes.train_max_length)
    estimate = estimate_for_run(TrainConfig(output_dir=str(ctx.work / "unused"), **fields))
    specs_path, out_path = ctx.work / "qlora-specs.json", ctx.work / "qlora-runs.json"
    specs_path.write_text(json.dumps([dict(fields, name="qlora-label", saved_logps=True)]), encoding="utf-8")
    run_measured([sys.executable, str(GPU_DIR / "train_worker.py"), str(specs_path), str(out_path)])
    result = json.loads(out_path.read_text(encoding="utf-8"))["runs"][0]
    if not result["ok"]:
        raise RuntimeError(f"QLoRA run failed: {result['error']}")
    peak = result["peak_gpu_bytes"]
    rows = [["peak GiB (measured / estimate)", f"{peak / GIB:.2f} / {estimate.total / GIB:.2f}" if peak else "—"]]
    for key in ("logps/chosen", "logps/rejected"):
        saved, policy = result["saved_val"][key], result["policy_val"][key]
        rows.append([f"val {key}: saved fp32 model / NF4 policy (gap)", f"{saved:.3f} / {policy:.3f} ({saved - policy:+.3f})"])
    return SectionResult(
        section="qlora",
        title="GPU suite: QLoRA memory and the saved model's log-prob gap",
        description=__doc__.split("\n\n", 1)[1].strip(),
        tables=[Table("QLoRA (NF4 base, LoRA r 8), label pairs", ["Quantity", "Value"], rows)],
        raw={"run": result, "estimate_bytes": estimate.total},
    )
