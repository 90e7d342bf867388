"""Several `riskdpo.train` runs in one process, one after another (one import, one CUDA context).

Each spec is a dict of `TrainConfig` fields plus ``name``; for each run the
worker records the losses of every step, the last validation statistics
(computed by the trained policy inside the run), the peak GPU memory of the
run (``torch.cuda.max_memory_allocated``, reset before it) and, with
``"saved_logps": true``, the mean summed log-probs of the validation pairs'
chosen and rejected completions under the saved final model, loaded in fp32
and scored with `riskdpo.models.logps.pair_logps` on the prompts rendered as
the run rendered them. A run that fails (out of memory, say) is recorded with
its error and the next one runs.

    python benchmarks/gpu/train_worker.py specs.json out.json
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from riskdpo.core.fileio import read_records, write_json


def saved_model_logps(final: Path, run: dict, val_path: str, device: str) -> dict:
    import torch

    from riskdpo.models.loading import load_model, load_tokenizer
    from riskdpo.models.logps import pair_logps
    from riskdpo.pairs.prompting import PromptFormat, render_prompt

    tokenizer = load_tokenizer(str(final))
    model = load_model(str(final), precision="fp32").to(device).eval()
    fmt = PromptFormat(**run["prompt_format"])
    pairs = [{**p, "prompt": render_prompt(tokenizer, p["prompt"], fmt)} for p in read_records(val_path)]
    with torch.no_grad():
        chosen, rejected = pair_logps(model, tokenizer, pairs)
    del model
    return {"logps/chosen": chosen.mean().item(), "logps/rejected": rejected.mean().item()}


def one_run(spec: dict, scratch: Path, device: str) -> dict:
    import torch

    from riskdpo.training.config import TrainConfig
    from riskdpo.training.metrics import read_metrics
    from riskdpo.training.run import train

    fields = {k: v for k, v in spec.items() if k not in ("name", "saved_logps")}
    output = scratch / spec["name"]
    config = TrainConfig(output_dir=str(output), progress=False, log_every=1, **fields)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    final = train(config)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    run = json.loads((output / "run.json").read_text(encoding="utf-8"))
    metrics = read_metrics(output / "metrics.jsonl")
    steps = [m for m in metrics if "loss" in m and "pairs/s" in m]
    vals = [m for m in metrics if "val/logps/chosen" in m]
    result = {
        "name": spec["name"], "ok": True, "seconds": seconds, "peak_gpu_bytes": peak,
        "precision": run["precision"], "losses": [m["loss"] for m in steps],
        "policy_val": {k.removeprefix("val/"): v for k, v in vals[-1].items() if k.startswith("val/logps")} if vals else None,
    }
    if spec.get("saved_logps"):
        result["saved_val"] = saved_model_logps(Path(final), run, spec["val"], device)
    return result


def main(specs_path: str, out_path: str) -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="gpu-suite-train-"))
    try:
        for spec in json.loads(Path(specs_path).read_text(encoding="utf-8")):
            try:
                results.append(one_run(spec, scratch, device))
            except Exception as error:  # record it (e.g. out of memory) and go on
                traceback.print_exc()
                results.append({"name": spec["name"], "ok": False, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"})
            shutil.rmtree(scratch / spec["name"], ignore_errors=True)
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_json(out_path, {"device": device, "runs": results})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
