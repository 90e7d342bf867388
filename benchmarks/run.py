"""Run riskdpo's benchmarks and write their tables (markdown) and raw numbers (JSON).

    python benchmarks/run.py                        # everything, full size (see README for times)
    python benchmarks/run.py --quick                # every table, minutes
    python benchmarks/run.py --only data,eval       # chosen sections
    python benchmarks/run.py --device cuda          # training on a GPU (phi-2-shaped model, LoRA and full)
    python benchmarks/run.py --summary-only         # only rewrite the current-figures table from the results

Each section writes ``<out>/<section>.md`` and ``<out>/<section>.json``, each
with the command, the machine and the date; ``<out>/BENCHMARKS.md`` joins the
section files present under the current-figures table (benchmarks/summary.py),
and that table replaces the one in the repository's BENCHMARKS.md when ``--out``
is ``benchmarks/results`` (or in ``--document``). Inputs (generated workbooks, pairs, models) are built
once into ``--work`` and reused. A section that fails is reported and the
others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from bench_data import data_section
from bench_eval import eval_section
from bench_growth import growth_section
from bench_train import train_section
from harness import BENCH_DIR, REPO_DIR, BenchmarkError, SectionResult, assemble, describe_machine, now_iso, write_section
from riskdpo.core.fileio import atomic_open
from settings import MODES, SAMPLE_WORKBOOK, Settings
from summary import RESULT_FILES, replace_block, summary_markdown, summary_rows

RESULTS_DIR = BENCH_DIR / "results"

SECTIONS = ("data", "train", "eval", "growth")
RUNNERS: dict[str, Callable[[Settings], SectionResult]] = {
    "data": data_section,
    "train": train_section,
    "eval": eval_section,
    "growth": growth_section,
}


def parse_sections(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return chosen


def run_sections(args: argparse.Namespace, argv: Sequence[str]) -> list[str]:
    """Run the chosen sections, writing each one's files into ``args.out``; return the sections that failed."""
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cores = args.cores if args.cores is not None else (None if args.device.startswith("cuda") else 2)
    settings = replace(
        MODES[mode],
        work=args.work.resolve(),
        sample=args.sample.resolve(),
        device=args.device,
        cores=cores or None,
        peak_tflops=args.peak_tflops,
        max_new_tokens=args.max_new_tokens or MODES[mode].max_new_tokens,
        eval_instruction=args.eval_instruction,
    )
    settings.work.mkdir(parents=True, exist_ok=True)
    machine = describe_machine(args.device)
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    failed = []
    for section in args.only:
        print(f"[{now_iso()}] {section} ...", flush=True)
        load_before = os.getloadavg()[0]
        try:
            result = RUNNERS[section](settings)
        except Exception as error:  # report it and go on to the next section
            failed.append(section)
            print(f"{section} failed: {error}", file=sys.stderr)
            if not isinstance(error, BenchmarkError):
                traceback.print_exc()
            continue
        load = (load_before, os.getloadavg()[0])
        path = write_section(result, args.out, command=command, machine=machine, date=now_iso(), load=load)
        print(path.read_text(encoding="utf-8"), flush=True)
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="every table at minutes-long sizes")
    size.add_argument("--smoke", action="store_true", help="seconds-long sizes and the tiny model (the test suite)")
    parser.add_argument("--only", type=parse_sections, default=list(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (training then uses the phi-2-shaped model)")
    parser.add_argument("--cores", type=int, default=None, help="CPUs each measured process may use (default: 2 on cpu, all with cuda)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the tables go")
    parser.add_argument(
        "--document",
        type=Path,
        default=None,
        help="Markdown file whose current-figures table to rewrite (default: BENCHMARKS.md when --out is benchmarks/results)",
    )
    parser.add_argument("--summary-only", action="store_true", help="run nothing; rewrite the current-figures table from --out")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / ".work", help="cache of generated inputs and models")
    parser.add_argument("--sample", type=Path, default=SAMPLE_WORKBOOK, help="workbook with train and train_cot sheets")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="eval: longest generated answer (default: 128)")
    parser.add_argument("--eval-instruction", default=None, help="eval: replace the prompts' closing instruction with this")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU dense bf16 peak for MFU (default: by GPU name)")
    args = parser.parse_args(argv)

    failed = [] if args.summary_only else run_sections(args, argv)
    rows = summary_rows(args.out)
    if args.summary_only and not rows:
        print(f"{args.out}: no results files ({', '.join(f'{name}.json' for name in RESULT_FILES)})", file=sys.stderr)
        return 1
    block = summary_markdown(rows)
    print(f"wrote {assemble(args.out, SECTIONS, summary=block)}")
    document = args.document or (REPO_DIR / "BENCHMARKS.md" if args.out.resolve() == RESULTS_DIR else None)
    if document is not None:
        try:
            rewritten = replace_block(document.read_text(encoding="utf-8"), block)
        except (OSError, ValueError) as error:
            print(f"{document}: {error}", file=sys.stderr)
            return 1
        with atomic_open(document) as handle:
            handle.write(rewritten)
        print(f"wrote the current figures into {document}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
