"""riskdpo's side of the evaluation benchmark: the steps of `eval-choices`, timed.

It runs what ``riskdpo eval-choices`` runs for one model (`riskdpo.evaluation.evaluate`:
`model_format`, then `score_model` in logprob or generate mode), loading the
model once and timing the scoring alone, so situations/s excludes the one-time
load exactly as the baseline's does (`baseline_eval.py`). For each mode one
untimed situation is scored first (lazy initialisation), as on the baseline's
side. With several ``--sizes`` it scores the first n situations for each n in
turn (the growth table: time against the number of situations). Several
``--modes`` share the one model load.

    python benchmarks/riskdpo_eval.py --model DIR --situations situations.json --modes logprob,generate --sizes 200 \
        --batch-size 16 --generate-batch-size 64 --out out.json
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

from riskdpo.core.fileio import write_json


def time_mode(model: Any, tokenizer: Any, situations: list, fmt: Any, options: Any, sizes: Sequence[int], device: str) -> dict[str, Any]:
    """Score the first n situations for each n in `sizes` in one mode; timings and the last run's records."""
    import torch

    from riskdpo.evaluation.evaluate import score_model

    score_model(model, tokenizer, situations[:1], fmt, options)  # untimed warm-up (lazy initialisation)
    runs = []
    records: list[dict] = []
    for size in sizes:
        chosen = situations[:size]
        start = time.perf_counter()
        records = score_model(model, tokenizer, chosen, fmt, options)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        loop_s = time.perf_counter() - start
        runs.append({"situations": len(chosen), "loop_s": loop_s, "situations_per_s": len(chosen) / loop_s})
    return {
        "runs": runs,
        "records": [
            {"situation_id": s.situation_id, "choice": r.get("label"), "answer": r.get("answer"), "skipped": r.get("skipped")}
            for s, r in zip(situations, records)
        ],
    }


def run_riskdpo(
    model_path: str,
    situations_path: str,
    *,
    modes: Sequence[str],
    sizes: Sequence[int],
    batch_size: int,
    generate_batch_size: int,
    max_new_tokens: int,
    instruction: str | None,
    device: str,
) -> dict[str, Any]:
    """Load once, then time each mode on the first n situations for each n in `sizes`."""
    from riskdpo.evaluation.evaluate import EvalOptions, FormatOverrides, model_format
    from riskdpo.models.loading import load_model, load_tokenizer, resolve_precision
    from riskdpo.data.situations import load_situations

    situations = load_situations(situations_path)
    precision = resolve_precision(EvalOptions().precision, device)
    start = time.perf_counter()
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path, precision=precision).to(device)
    load_s = time.perf_counter() - start
    fmt = model_format(model_path, FormatOverrides(instruction=instruction))
    result: dict[str, Any] = {
        "model": model_path,
        "batch_size": batch_size,
        "generate_batch_size": generate_batch_size,
        "max_new_tokens": max_new_tokens,
        "prompt_format": fmt.to_json(),
        "load_s": load_s,
    }
    for mode in modes:
        batch = generate_batch_size if mode == "generate" else batch_size
        options = EvalOptions(mode=mode, batch_size=batch, max_new_tokens=max_new_tokens)
        result[mode] = time_mode(model, tokenizer, situations, fmt, options, sizes, device)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--situations", required=True)
    parser.add_argument("--modes", default="logprob,generate", help="comma-separated: logprob, generate")
    parser.add_argument("--sizes", required=True, help="comma-separated numbers of situations, e.g. 25,50,100")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--generate-batch-size", type=int, default=None, help="generate mode's batch (default: --batch-size)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--instruction", default=None, help="closing instruction to put in each prompt (default: keep the prompt's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = run_riskdpo(
        args.model,
        args.situations,
        modes=args.modes.split(","),
        sizes=[int(size) for size in args.sizes.split(",")],
        batch_size=args.batch_size,
        generate_batch_size=args.generate_batch_size or args.batch_size,
        max_new_tokens=args.max_new_tokens,
        instruction=args.instruction,
        device=args.device,
    )
    write_json(args.out, result)


if __name__ == "__main__":
    main()
