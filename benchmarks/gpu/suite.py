"""The GPU run, prepared: check and measure riskdpo on one GPU within a time budget.

    python benchmarks/gpu/suite.py --out DIR --budget-s 480 --tokenizer .whl/tokenizer-smollm2   # on the H200
    python benchmarks/gpu/suite.py --out DIR --dry-run                                           # any CPU, minutes

Runs the stages of `sizes.STAGES` in priority order (environment, correctness,
kernels, train, memory, eval, qlora), each in its own process under its own
time box, and prints one line per stage: ``done``, ``failed: <reason>`` or
``skipped ...``. A stage that finishes writes ``DIR/<stage>.json`` and
``DIR/<stage>.md`` at once (the benchmark harness's format: command, machine,
date, tables, targets, raw numbers) and its output goes to ``DIR/<stage>.log``;
after every stage ``DIR/suite.json`` and ``DIR/suite.md`` list every stage's
outcome so far, so a run cut short still returns everything done.

Time: a stage starts only if the budget left is at least its estimate
(`sizes.py` derives the estimates from FLOPs and fixed costs); it is stopped at
twice its estimate or at the end of the budget, whichever comes first (a dry
run gives every stage the whole budget left). Stopping kills the stage's whole
process group (its trainer and baseline processes too).

``--dry-run`` runs every stage at tiny sizes on the CPU with GPUs hidden: the
test suite runs it (tests/test_gpu_suite.py), so the suite cannot rot between
GPU runs; the rehearsal (rehearse.sh) runs it in a venv built like the GPU image.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from common import BENCH_DIR, Context, env_for_children
from sizes import STAGES, Stage

DEFAULT_BUDGET_S = 480.0


def time_box(stage: Stage, left_s: float, dry_run: bool) -> float | None:
    """Seconds the stage may run, or None when it should be skipped for time."""
    estimate = stage.dry_estimate_s if dry_run else stage.estimate_s
    if left_s < estimate:
        return None
    return left_s if dry_run else min(2 * estimate, left_s)


def missing_requirement(stage: Stage, ctx: Context) -> str | None:
    """Why an optional stage cannot run here (no GPU, or a package the image lacks), or None."""
    import importlib.util

    if stage.name != "qlora":
        return None
    if not ctx.cuda:
        return "QLoRA needs a CUDA GPU (bitsandbytes' 4-bit layers)"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes not installed (carry its wheel in a second call: README.md)"
    return None


def run_child(stage: Stage, ctx: Context, seconds: float) -> tuple[str, str]:
    """Run one stage in its own process group; (status, reason)."""
    log = ctx.out / f"{stage.name}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage.name, "--context", json.dumps(ctx.to_json())]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not ctx.cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return "failed", f"time box of {seconds:.0f} s ran out (see {log.name})"
    if code != 0:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        return "failed", f"exit {code}: {lines[-1] if lines else 'no output'} (see {log.name})"
    if not (ctx.out / f"{stage.name}.json").exists():
        return "failed", f"exit 0 but no {stage.name}.json written"
    return "done", ""


def write_summary(ctx: Context, command: str, budget_s: float, outcomes: list[dict]) -> None:
    """suite.json and suite.md: every stage's outcome so far (rewritten after each stage)."""
    from harness import now_iso
    from riskdpo.core.fileio import atomic_open

    record = {"command": command, "dry_run": ctx.dry_run, "device": ctx.device, "budget_s": budget_s,
              "written": now_iso(), "stages": outcomes}
    with atomic_open(ctx.out / "suite.json") as handle:
        json.dump(record, handle, indent=1)
    lines = ["# GPU suite", "", f"- Command: `{command}`", f"- Written: {record['written']}", "",
             "| Stage | Status | Seconds | Estimate s | Reason |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {o['stage']} | {o['status']} | {o['seconds']:.1f} | {o['estimate_s']:.0f} | {o['reason']} |" for o in outcomes]
    for outcome in outcomes:
        path = ctx.out / f"{outcome['stage']}.md"
        if outcome["status"] == "done" and path.exists():
            lines += ["", path.read_text(encoding="utf-8").rstrip()]
    with atomic_open(ctx.out / "suite.md") as handle:
        handle.write("\n".join(lines) + "\n")


def orchestrate(ctx: Context, stages: Sequence[Stage], budget_s: float, command: str) -> int:
    start = time.monotonic()
    outcomes: list[dict] = []
    for stage in stages:
        left = budget_s - (time.monotonic() - start)
        estimate = stage.dry_estimate_s if ctx.dry_run else stage.estimate_s
        began = time.monotonic()
        seconds = time_box(stage, left, ctx.dry_run)
        missing = missing_requirement(stage, ctx)
        if missing:
            status, reason = "skipped", missing
        elif seconds is None:
            status, reason = "skipped", f"for time: {max(left, 0):.0f} s left, needs {estimate:.0f} s"
        else:
            status, reason = run_child(stage, ctx, seconds)
        took = time.monotonic() - began
        outcomes.append({"stage": stage.name, "title": stage.title, "status": status, "reason": reason,
                         "seconds": took, "estimate_s": estimate, "optional": stage.optional})
        write_summary(ctx, command, budget_s, outcomes)
        detail = f"done in {took:.0f} s" if status == "done" else f"{status}: {reason}" if status == "failed" else f"skipped {reason}"
        print(f"{stage.name}: {detail}", flush=True)
    failed = [o for o in outcomes if o["status"] == "failed"]
    print(f"suite: {len(outcomes) - len(failed)} of {len(outcomes)} stages without failure in "
          f"{time.monotonic() - start:.0f} s; results in {ctx.out}", flush=True)
    return 1 if failed else 0


def run_stage(name: str, ctx: Context) -> None:
    """In the child: run one stage and write its JSON and Markdown."""
    import importlib

    from harness import describe_machine, now_iso, write_section

    load_before = os.getloadavg()[0]
    result = importlib.import_module(f"stage_{name}").run(ctx)
    command = "python benchmarks/gpu/suite.py" + (" --dry-run" if ctx.dry_run else "") + f" (stage {name})"
    write_section(result, ctx.out, command=command, machine=describe_machine(ctx.device), date=now_iso(),
                  load=(load_before, os.getloadavg()[0]))


def parse_stages(text: str) -> list[Stage]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {stage.name: stage for stage in STAGES}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [stage for stage in STAGES if stage.name in names]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="results folder (stage files, logs, suite.json, suite.md)")
    parser.add_argument("--work", type=Path, default=None, help="inputs and models (default: OUT/work)")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="seconds for all stages together")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, GPUs hidden")
    parser.add_argument("--only", type=parse_stages, default=list(STAGES), help="comma-separated stages")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer of the phi-2-shaped model (carry.py writes one)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU dense bf16 peak for MFU (default: by GPU name)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--context", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        ctx = Context.from_json(json.loads(args.context))
        env_for_children(ctx)
        run_stage(args.stage, ctx)
        return 0
    if args.out is None:
        parser.error("--out DIR is required")
    out = args.out.resolve()
    work = (args.work or out / "work").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = args.tokenizer.resolve() if args.tokenizer else None
    if tokenizer is not None and not (tokenizer / "tokenizer_config.json").exists():
        parser.error(f"--tokenizer {args.tokenizer}: no tokenizer_config.json there (python benchmarks/gpu/carry.py writes one)")
    ctx = Context(out, work, args.dry_run, "cpu" if args.dry_run else "cuda", tokenizer, args.peak_tflops)
    env_for_children(ctx)
    command = shlex.join(["python", "benchmarks/gpu/suite.py", *argv])
    return orchestrate(ctx, args.only, args.budget_s, command)


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    sys.exit(main())
