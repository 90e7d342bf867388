"""Turning spreadsheets into situations: the `riskdpo convert` library.

`read_situations` reads every input's tables (`riskdpo.data.tables`), decides
each table's layout and builds its situations (`riskdpo.data.layouts`), and
collects what the summary reports. Per-situation errors are raised as
`UserError` (strict) or skip the situation and are listed and counted
(lenient); errors of a whole sheet (a missing column) stop the conversion
either way. Without `--sheet`, a workbook sheet that holds no situations (notes,
numbers, a chart sheet) is skipped and listed as skipped. When the options
carry lotteries, `riskdpo.data.verify` recomputes each agent's best options:
disagreements with the sheet are warnings, never fatal, because a sheet may
display rounded prizes while its labels came from exact ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

from riskdpo.core.errors import UserError
from riskdpo.data.cells import RowProblem
from riskdpo.data.layouts import LAYOUT_NAMES, layout1_groups, layout1_situation, layout2_situation, table_layout
from riskdpo.data.situations import Situation
from riskdpo.data.tables import WORKBOOK_SUFFIXES, Table, read_tables
from riskdpo.data.verify import find_mismatches, missing_label_sets, recompute_label_sets


@dataclass(frozen=True)
class Finding:
    """Something to tell the user, with where it is (file, sheet, row)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class SheetReport:
    """What became of one table: its layout and situation count, or why it was skipped."""

    where: str
    name: str
    layout: int | None = None
    situations: int = 0
    note: str = ""


@dataclass
class ConversionResult:
    """Situations read from the inputs, and everything the summary reports."""

    situations: list[Situation] = field(default_factory=list)
    sheets: list[SheetReport] = field(default_factory=list)
    repairs: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)
    mismatches: list[Finding] = field(default_factory=list)
    filled: list[Finding] = field(default_factory=list)
    verified: bool = True
    checked: int = 0  # situations whose lotteries allowed recomputing the labels


def _empty_note(table: Table, layout: int | None) -> str:
    """Why a table holds no situations, or "" when it does."""
    if table.note:
        return table.note
    if not table.columns:
        return "the sheet is empty" if table.sheet is not None else "the file is empty"
    if layout is None:
        return f"holds no situations (no prompt_text column; columns: {', '.join(table.columns)})"
    if not table.rows:
        return "has a header but no rows"
    return ""


def _convert_table(table: Table, layout: int, result: ConversionResult, strict: bool, seen: dict) -> int:
    """Add the situations of one table to `result`; returns how many were added."""
    positions = {column: position for position, column in enumerate(table.columns)}
    before = len(result.situations)

    def problem(error: RowProblem) -> None:
        if strict:
            raise UserError(f"{table.where(error.row)}: {error.message}")
        result.skipped.append(Finding(table.where(error.row), error.message))

    def accept(row: int, build) -> None:
        try:
            situation, repairs = build()
            key = (situation.sheet, situation.situation_id)
            if key in seen:
                raise RowProblem(row, f"situation_id {situation.situation_id} is used again (first at {seen[key]})")
        except RowProblem as error:
            problem(error)
            return
        seen[key] = table.where(row)
        result.repairs.extend(Finding(table.where(row), note) for note in repairs)
        if result.verified:
            _verify(situation, table.where(row), result)
        result.situations.append(situation)

    if layout == 1:
        for sid, rows in layout1_groups(table, positions, problem).items():
            accept(rows[0][0], partial(layout1_situation, table, positions, sid, rows))
    else:
        for row, values in table.rows:
            accept(row, partial(layout2_situation, table, positions, row, values))
    return len(result.situations) - before


def _verify(situation: Situation, where: str, result: ConversionResult) -> None:
    """Recompute the agents' labels: report mismatches, fill the sets the sheet lacks."""
    computed = recompute_label_sets(situation)
    result.checked += bool(computed)
    mismatches = find_mismatches(situation, computed)
    if mismatches:
        details = "; ".join(mismatch.describe() for mismatch in mismatches)
        result.mismatches.append(Finding(where, f"situation {situation.situation_id}: {details}"))
    missing = missing_label_sets(situation, computed)
    for field_name, labels in missing.items():
        setattr(situation, field_name, labels)
    if missing:
        result.filled.append(Finding(where, f"situation {situation.situation_id}: {', '.join(missing)}"))


def _unique_names(tables: list[Table]) -> None:
    """Prefix a sheet name shared by several inputs with its file stem, so (sheet, id) stays unique."""
    counts = Counter(table.name for table in tables)
    for table in tables:
        if counts[table.name] > 1 and table.sheet is not None:
            table.name = f"{table.path.stem}/{table.sheet}"


def read_situations(
    paths: str | Path | Sequence[str | Path],
    sheet: str | Sequence[str] | None = None,
    strict: bool = True,
    verify: bool = True,
) -> ConversionResult:
    """Read situations from .xlsx/.csv/.json files in either layout.

    `sheet` limits workbooks to the named sheet(s); without it every sheet
    that holds situations is read and the others are listed as skipped.
    `strict` turns the first bad situation into a `UserError`; lenient
    (`strict=False`) skips it and lists the reason. `verify` recomputes the
    agents' best options from the lotteries (mismatches are warnings).
    """
    inputs = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(path) for path in paths]
    if not inputs:
        raise UserError("no input files given")
    sheets = [sheet] if isinstance(sheet, str) else list(sheet or [])
    if sheets and not any(path.suffix.lower() in WORKBOOK_SUFFIXES for path in inputs):
        raise UserError(f"--sheet {sheets[0]} applies to .xlsx workbooks, and no input is one")
    tables = []
    for path in inputs:
        is_workbook = path.suffix.lower() in WORKBOOK_SUFFIXES
        explicit = bool(sheets) or not is_workbook
        for table in read_tables(path, sheets if is_workbook else None):
            tables.append((table, table_layout(table), explicit))
    _unique_names([table for table, _, _ in tables])

    result = ConversionResult(verified=verify)
    seen: dict = {}
    for table, layout, explicit in tables:
        note = _empty_note(table, layout)
        if note and explicit:
            raise UserError(f"{table.where()}: {note}")
        report = SheetReport(table.where(), table.name, layout, note=f"skipped: {note}" if note else "")
        if not note:
            report.situations = _convert_table(table, layout, result, strict, seen)
        result.sheets.append(report)
    if not result.situations:
        reasons = "; ".join(f"{report.where}: {report.note or 'every situation was skipped'}" for report in result.sheets)
        raise UserError(f"no situations to convert ({reasons})")
    return result


# ---------------------------------------------------------------- summary


def _listed(title: str, findings: list[Finding], limit: int) -> list[str]:
    lines = [f"{title}: {len(findings)}"]
    lines += [f"  {finding}" for finding in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"  ... and {len(findings) - limit} more")
    return lines


def summarize(result: ConversionResult, output: str | Path | None = None, limit: int = 10) -> str:
    """A short human summary: per-sheet counts, option counts, disagreements, repairs, problems."""
    count = len(result.situations)
    converted = [report for report in result.sheets if not report.note]
    head = f"{count} situations from {len(converted)} sheet(s)"
    lines = [f"{head} written to {output}" if output else head]
    for report in result.sheets:
        what = f"{report.situations} situations ({LAYOUT_NAMES[report.layout]})" if not report.note else report.note
        lines.append(f"  {report.where}: {what}")
    sizes = Counter(len(situation.option_labels) for situation in result.situations)
    lines.append("Situations by number of options: " + ", ".join(f"{size}: {sizes[size]}" for size in sorted(sizes)))
    disagreements = sum(situation.is_disagreement for situation in result.situations)
    lines.append(f"Disagreements (risk-averse and risk-neutral best options differ): {disagreements} of {count}")
    lines += _listed("Label repairs", result.repairs, limit)
    if result.verified:
        if result.filled:
            lines.append(f"Label sets computed from the lotteries where the sheet has none: {len(result.filled)} situations")
        lines.append(f"Verified against the lotteries: {result.checked} of {count} situations")
        lines += _listed("Label mismatches, sheet vs recomputed (warnings)", result.mismatches, limit)
    else:
        lines.append("Verification: off (--no-verify)")
    if result.skipped:
        lines += _listed("Skipped as bad (lenient)", result.skipped, limit)
    return "\n".join(lines)
