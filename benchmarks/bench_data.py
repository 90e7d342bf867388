"""Data section: `riskdpo convert` on a generated 10,000-situation workbook, then `make-pairs`.

What is measured: each command as a user runs it (``riskdpo convert book.xlsx
-o situations.json``), in its own process pinned to ``--cores`` CPUs (2 by
default, the issue's machine), wall time from start to exit (interpreter
start-up and imports included) and the process's peak resident set size. The
median wall time of ``--repeats`` runs is reported, and the largest peak RSS.

The growth table repeats this at several sizes. Cost should grow linearly:
the marginal cost per 1,000 situations, (t_n - t_m) / (n - m) * 1000 between
consecutive sizes, stays flat, and the scaling exponent
log(t_n / t_m) / log(n / m) tends to 1 from below (the constant start-up
weighs less as n grows).
"""

from __future__ import annotations

import json
import math
import statistics

from harness import SectionResult, Table, Target, riskdpo_command, run_measured
from settings import Settings
from workloads import generated_workbook

CONVERT_SECONDS = 30.0
CONVERT_MIB = 1024.0
MAKE_PAIRS_SECONDS = 5.0


def _repeated(command: list, settings: Settings) -> dict:
    """Median wall time and largest peak RSS of `settings.repeats` runs of `command`."""
    runs = [run_measured(command, cores=settings.cores) for _ in range(settings.repeats)]
    return {
        "wall_s": statistics.median(run.wall_s for run in runs),
        "wall_s_runs": [run.wall_s for run in runs],
        "peak_rss_mib": max(run.peak_rss_mib for run in runs),
    }


def measure_pipeline(settings: Settings, situations: int) -> dict:
    """Convert a generated workbook of `situations` situations, then make pairs from it."""
    work = settings.work
    workbook = generated_workbook(work, situations, settings.data_seed)
    converted = work / f"measured-{situations}.situations.json"
    pairs = work / f"measured-{situations}.pairs.jsonl"
    convert = _repeated(riskdpo_command("convert", workbook, "-o", converted), settings)
    make_pairs = _repeated(riskdpo_command("make-pairs", converted, "-o", pairs), settings)
    situations_json = json.loads(converted.read_text(encoding="utf-8"))
    return {
        "situations": len(situations_json),
        "option_rows": sum(len(situation["option_labels"]) for situation in situations_json),
        "workbook_mib": workbook.stat().st_size / 2**20,
        "pairs": sum(1 for line in pairs.read_text(encoding="utf-8").splitlines() if line.strip()),
        "convert": convert,
        "make_pairs": make_pairs,
    }


def startup_seconds(settings: Settings) -> float:
    """Wall time of `riskdpo --version`: the interpreter and CLI start-up every command pays."""
    return _repeated(riskdpo_command("--version"), settings)["wall_s"]


def data_section(settings: Settings) -> SectionResult:
    measured = measure_pipeline(settings, settings.data_situations)
    startup = startup_seconds(settings)
    n = measured["situations"]
    convert, make_pairs = measured["convert"], measured["make_pairs"]
    table = Table(
        title=f"convert and make-pairs on a generated {n:,}-situation workbook ({settings.cores} cores)",
        columns=["Command", "Input", "Output", "Wall s", "Peak RSS MiB", "Situations/s"],
        rows=[
            [
                "riskdpo convert",
                f"{measured['option_rows']:,} option rows, {measured['workbook_mib']:.1f} MiB .xlsx",
                f"{n:,} situations",
                convert["wall_s"],
                convert["peak_rss_mib"],
                n / convert["wall_s"],
            ],
            [
                "riskdpo make-pairs",
                f"{n:,} situations",
                f"{measured['pairs']:,} pairs",
                make_pairs["wall_s"],
                make_pairs["peak_rss_mib"],
                n / make_pairs["wall_s"],
            ],
        ],
        notes=[
            f"Wall time is the median of {settings.repeats} run(s) of the whole command (start-up included; "
            f"`riskdpo --version` alone takes {startup:.2f} s); peak RSS is the command process's maximum resident set."
        ],
    )

    def cause(part: dict) -> str:
        return f"{startup:.2f} s is start-up; the remaining {part['wall_s'] - startup:.2f} s is reading and converting {n:,} situations"

    targets = [
        Target(f"convert {n:,} situations, wall time", convert["wall_s"], CONVERT_SECONDS, "<=", " s", cause(convert)),
        Target(
            f"convert {n:,} situations, peak RSS",
            convert["peak_rss_mib"],
            CONVERT_MIB,
            "<=",
            " MiB",
            "peak RSS grows with the situations held in memory before writing",
        ),
        Target(f"make-pairs on {n:,} situations, wall time", make_pairs["wall_s"], MAKE_PAIRS_SECONDS, "<=", " s", cause(make_pairs)),
    ]
    return SectionResult(
        section="data",
        title="Data: convert and make-pairs",
        description=(
            "A workbook written by `riskdpo generate` (layout 1, one row per option) is converted with "
            "`riskdpo convert`, and `riskdpo make-pairs` makes training pairs from the result."
        ),
        tables=[table],
        targets=targets,
        raw={"measured": measured, "startup_s": startup, "cores": settings.cores},
    )


def data_growth_table(settings: Settings) -> tuple[Table, list[dict]]:
    """convert and make-pairs at each of `settings.growth_data_sizes` situations."""
    points = [measure_pipeline(settings, size) for size in settings.growth_data_sizes]
    rows = []
    for index, point in enumerate(points):
        previous = points[index - 1] if index else None
        row = [point["situations"], point["option_rows"]]
        for step in ("convert", "make_pairs"):
            wall = point[step]["wall_s"]
            row += [wall, point[step]["peak_rss_mib"]]
            row += [_marginal_ms(previous, point, step), scaling_exponent(previous, point, step)]
        rows.append(row)
    table = Table(
        title=f"Growth: convert and make-pairs against the number of situations ({settings.cores} cores)",
        columns=[
            "Situations",
            "Option rows",
            "convert s",
            "convert MiB",
            "convert ms per extra situation",
            "convert exponent",
            "make-pairs s",
            "make-pairs MiB",
            "make-pairs ms per extra situation",
            "make-pairs exponent",
        ],
        rows=rows,
        notes=[
            "ms per extra situation = (t_n - t_prev) / (n - n_prev) * 1000; exponent = log(t_n / t_prev) / log(n / n_prev) "
            "(1 = linear; below 1 while fixed start-up still weighs). Wall times include start-up."
        ],
    )
    return table, points


def _marginal_ms(previous: dict | None, point: dict, step: str) -> float | None:
    if previous is None:
        return None
    extra = point["situations"] - previous["situations"]
    return (point[step]["wall_s"] - previous[step]["wall_s"]) / extra * 1000 if extra else None


def scaling_exponent(previous: dict | None, point: dict, step: str) -> float | None:
    """log(t / t_prev) / log(n / n_prev) for command `step` between two sizes (1 = linear)."""
    if previous is None:
        return None
    return math.log(point[step]["wall_s"] / previous[step]["wall_s"]) / math.log(point["situations"] / previous["situations"])
