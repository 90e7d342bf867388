"""The current-figures table at the top of BENCHMARKS.md, built from the results files.

Why: BENCHMARKS.md once opened with figures that later sections contradicted,
because its opening was written by hand and the measurements moved on. Here the
opening is a pure function of the newest measurement of each benchmark, the
JSON files in ``benchmarks/results/``: ``<section>.json`` as `run.py` writes it
(one row per target the section checks) and hand-recorded files in the same
folder that carry their rows ready-made (``startup.json``). `run.py` rewrites
the block between `BEGIN` and `END` when it runs; tests/test_benchmarks_summary.py
checks that the committed block equals what this module makes from the committed
files, and that the speed ratios a document quotes ("15.8×") appear in it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from harness import format_cell

BEGIN = "<!-- current figures: written by benchmarks/run.py from benchmarks/results/*.json; do not edit by hand -->"
END = "<!-- end of current figures -->"

#: The results files the table reads, in its order: run.py's sections, then hand-recorded measurements.
RESULT_FILES = ("data", "train", "eval", "growth", "startup")

#: A speed ratio as documents write it: a number glued to "×" or "x" ("15.8×", "4.49x"), not "4 × 512".
RATIO = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[×x](?![\w.]*\d)")

COLUMNS = ["What", "Against", "Latest", "Target", "Met", "Machine", "Date", "Command"]


@dataclass(frozen=True)
class SummaryRow:
    """One measured figure: what, compared with what, its latest value, the target, where and when."""

    what: str
    against: str
    latest: str
    target: str
    met: bool | None
    machine: str
    date: str
    command: str
    #: Why a missed target was missed, from the measured numbers ("" when met or unknown).
    cause: str = ""


def machine_short(machine: dict[str, Any]) -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores' (and the GPU when there was one)."""
    text = f"{machine.get('cpu', 'unknown CPU')}, {machine.get('usable_cores', '?')} cores"
    if machine.get("gpu"):
        text += f", {machine['gpu']}"
    return text


def _figure(value: float | None, unit: str) -> str:
    """A measured value as the summary shows it; ratios (unit "x") with the × sign."""
    return format_cell(value) + ("×" if unit == "x" else unit)


def _train_detail(record: dict[str, Any], target: dict[str, Any]) -> tuple[str, str]:
    """(what, against) for a training target, with the pairs/s behind a speed ratio."""
    steps = record["raw"].get("settings", {})
    size = f"{steps.get('steps', '?')} steps of batch {steps.get('batch', '?')}"
    for result in record["raw"].get("results", []):
        where = f"({result['model']}, {result['completions']} completions, {result['finetune']})"
        if where in target["name"] and target["name"].startswith("pairs/s"):
            rates = f" ({format_cell(result['riskdpo']['pairs_per_s'])} vs {format_cell(result['trl']['pairs_per_s'])} pairs/s)"
            return f"Training {target['name']}, {size}", "TRL DPOTrainer, same pairs and settings" + rates
    return f"Training {target['name']}, {size}", "TRL DPOTrainer, same pairs and settings"


def _eval_detail(record: dict[str, Any], target: dict[str, Any]) -> tuple[str, str]:
    """(what, against) for an evaluation target, with the situations/s behind a speed ratio."""
    baseline = record["raw"]["baseline"]
    what = f"Evaluation, {baseline['situations']} situations: {target['name']}"
    against = "one situation at a time: chat template + model.generate + regex"
    mode = "logprob" if target["name"].startswith("logprob") else "generate" if "generate situations/s" in target["name"] else None
    if mode:
        ours = record["raw"]["riskdpo"][mode]["runs"][-1]["situations_per_s"]
        against += f" ({format_cell(ours)} vs {format_cell(baseline['situations_per_s'])} situations/s)"
    return what, against


def _eval_whole_commands(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows without a target: the whole `riskdpo eval-choices` command against the whole baseline script.

    Start-up, model load and the report are included on both sides, so this is
    what a user waits for; both sides score the same situations, so the ratio of
    wall times is the ratio of situations/s.
    """
    raw = record["raw"]
    baseline_s = raw["baseline"]["process_wall_s"]
    rows = []
    for mode, measured in raw.get("whole_command", {}).items():
        rows.append(
            dict(
                what=f"Evaluation, {raw['baseline']['situations']} situations: whole `riskdpo eval-choices --mode {mode}` command",
                against=f"the whole baseline script ({format_cell(measured['wall_s'])} vs {format_cell(baseline_s)} s)",
                latest=_figure(baseline_s / measured["wall_s"], "x"),
                target="—",
                met=None,
            )
        )
    return rows


def _plain_detail(label: str, against: str) -> Callable[[dict[str, Any], dict[str, Any]], tuple[str, str]]:
    return lambda record, target: (f"{label}: {target['name']}", against)


DETAILS: dict[str, Callable[[dict[str, Any], dict[str, Any]], tuple[str, str]]] = {
    "data": _plain_detail("Data", "the issue's budget for a 2-core CPU"),
    "train": _train_detail,
    "eval": _eval_detail,
    "growth": _plain_detail("Growth", "linear growth (exponent 1)"),
}

#: Rows a section adds beyond its targets (given as `SummaryRow` fields less machine, date and command).
EXTRA_ROWS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {"eval": _eval_whole_commands}


def record_rows(record: dict[str, Any]) -> list[SummaryRow]:
    """The summary rows of one results file.

    A file `run.py` wrote gives one row per target it checked; a hand-recorded
    file (``"rows"``) gives its rows as written, with the file's command, machine and
    date unless a row names its own command.
    """
    where = dict(machine=machine_short(record["machine"]), date=record["date"][:10], command=record["command"])
    if "rows" in record:
        return [SummaryRow(**{**where, **row}) for row in record["rows"]]
    detail = DETAILS.get(record["section"], _plain_detail(record["section"].capitalize(), "—"))
    rows = []
    for target in record["targets"]:
        what, against = detail(record, target)
        rows.append(
            SummaryRow(
                what=what,
                against=against,
                latest=_figure(target["measured"], target["unit"]),
                target=("≥ " if target["comparison"] == ">=" else "≤ ") + _figure(target["threshold"], target["unit"]),
                met=target["met"],
                cause="" if target["met"] else target.get("cause", ""),
                **where,
            )
        )
    rows += [SummaryRow(**row, **where) for row in EXTRA_ROWS.get(record["section"], lambda record: [])(record)]
    return rows


def summary_rows(results_dir: Path, names: Iterable[str] = RESULT_FILES) -> list[SummaryRow]:
    """Rows from ``<results_dir>/<name>.json`` for each name whose file exists, in `names` order."""
    rows = []
    for name in names:
        path = Path(results_dir) / f"{name}.json"
        if path.exists():
            rows += record_rows(json.loads(path.read_text(encoding="utf-8")))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def summary_markdown(rows: list[SummaryRow]) -> str:
    """The block, markers included: the table, then the measured cause of each missed target."""
    met = {True: "yes", False: "**no**", None: "—"}
    lines = [
        BEGIN,
        "## Current figures",
        "",
        "The newest measurement of each benchmark, from `benchmarks/results/*.json`; the sections "
        "below hold the full tables. A command with `--quick` (or `--smoke`) ran at reduced sizes (benchmarks/settings.py).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for row in rows:
        cells = [row.what, row.against, row.latest, row.target, met[row.met], row.machine, row.date, f"`{row.command}`"]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    missed = [row for row in rows if row.met is False and row.cause]
    if missed:
        lines += ["", "Where a target is missed, the measured cause:", ""]
        lines += [f"- {row.what} ({row.latest}): {row.cause}." for row in missed]
    lines.append(END)
    return "\n".join(lines) + "\n"


def _block_span(document: str) -> tuple[int, int]:
    """Where the block (BEGIN … END, inclusive) starts and ends in `document`.

    Raises ValueError when the markers are missing: where the block goes is the
    document's choice, made once by hand.
    """
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no summary block ({BEGIN} … {END}) in the document")
    return start, end + len(END)


def replace_block(document: str, block: str) -> str:
    """`document` with its summary block replaced by `block`."""
    start, end = _block_span(document)
    return document[:start] + block.rstrip("\n") + document[end:]


def current_block(document: str) -> str:
    """The summary block of `document`, markers included, with one final newline."""
    start, end = _block_span(document)
    return document[start:end] + "\n"


def quoted_ratios(text: str) -> list[str]:
    """Every speed ratio `text` states ("15.8×", "4.49x"), in order, as written without the sign."""
    return RATIO.findall(text)


def ratios_not_in(text: str, block: str) -> list[str]:
    """The ratios `text` quotes that the summary `block` does not hold (compared as numbers: "15×" is "15.0×").

    Point it at any document that states speed: a figure missing from the block
    is stale or was never measured.
    """
    current = {float(value) for value in quoted_ratios(block)}
    return [value for value in quoted_ratios(text) if float(value) not in current]
