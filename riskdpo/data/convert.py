"""Turning tables of spreadsheet rows into situations (the `riskdpo convert` library).

Both layouts of `docs/data-formats.md` are read:

* layout 1, one row per option: rows sharing `situation_id` form a situation,
  `option_index` (0-based) orders them, `prizes_display` + `probs_percent` give
  each option's lottery, and the label-set columns (`CARA_correct_labels`, ...)
  or, failing those, the `is_best_*_display` TRUE flags give each agent's best
  options;
* layout 2, one row per situation: `correct_label` (risk-averse) and
  `incorrect_label` (risk-neutral), with negative-index corruption repaired from
  `labels_vector` (-1 = its first entry, -2 = its second: the files' own rule, not
  Python's negative indexing).

Option labels always come from the prompt's option lines, so a label in the
sheet that the prompt does not offer is a data error. Per-situation errors are
raised as `UserError` (strict) or skip the situation and are listed (lenient);
errors of a whole sheet (a missing column) stop the conversion either way.
When the options carry lotteries, `riskdpo.data.verify` recomputes each agent's
best options: disagreements with the sheet are warnings, never fatal, because a
sheet may display rounded prizes while its labels came from exact ones.
Layout 2 has no numeric columns; its lotteries are read from the option lines
(`riskdpo.data.lotteries.prompt_lottery`).
"""

from __future__ import annotations

import ast
import datetime
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.data.labels import answer_variants, canonical_label, find_option_texts
from riskdpo.data.lotteries import lottery_from_percents, prompt_lottery
from riskdpo.data.tables import WORKBOOK_SUFFIXES, Table, read_tables
from riskdpo.data.situations import Option, Situation
from riskdpo.data.expected_utility import parse_number_list
from riskdpo.data.verify import find_mismatches, missing_label_sets, recompute_label_sets

#: Columns a table of each layout must have.
REQUIRED_COLUMNS = {
    1: ("situation_id", "option_index", "prompt_text"),
    2: ("prompt_text", "correct_label", "incorrect_label"),
}
LAYOUT_NAMES = {1: "layout 1, one row per option", 2: "layout 2, one row per situation"}
_LAYOUT1_MARKERS = {"option_index", "prizes_display", "probs_percent", "option_type", "CARA_correct_labels"}
_LAYOUT2_MARKERS = {"correct_label", "incorrect_label", "bad_correct_answers", "bad_incorrect_answers", "labels_vector"}

#: Layout 1 label-set field -> (JSON-list column, per-option TRUE column used when the list column is absent).
LABEL_SET_COLUMNS: dict[str, tuple[str, str | None]] = {
    "risk_averse": ("CARA_correct_labels", "is_best_cara_display"),
    "risk_neutral": ("linear_correct_labels", "is_best_linear_display"),
    "too_risk_averse": ("CARA_alpha_0_10_correct_labels", "is_best_cara_alpha_0_10_display"),
    "cooperate": ("cooperate_correct_labels", None),
}
#: Label-set field -> column of extra answer variants for its (single) label.
VARIANT_COLUMNS = {"risk_averse": "bad_correct_answers", "risk_neutral": "bad_incorrect_answers"}
#: Columns each layout turns into situation fields; every other column goes to `meta`.
#: Layout 1's per-option `is_best_*` flags count as used even where the label-set
#: columns are read instead: the first row's flag says nothing of the situation.
FIELD_COLUMNS = {
    1: frozenset(
        {"situation_id", "option_index", "prompt_text", "prizes_display", "probs_percent", "option_type"}
        | set(VARIANT_COLUMNS.values())
        | {column for columns in LABEL_SET_COLUMNS.values() for column in columns if column}
    ),
    2: frozenset({"situation_id", "prompt_text", "correct_label", "incorrect_label", *VARIANT_COLUMNS.values()}),
}
#: Meta columns holding TRUE/FALSE, stored as JSON booleans whatever the file type.
BOOLEAN_COLUMNS = ("use_verbal_probs",)
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


class RowProblem(Exception):
    """A data error in one situation, at spreadsheet row `row` (internal; becomes a Finding or UserError)."""

    def __init__(self, row: int, message: str):
        super().__init__(message)
        self.row = row
        self.message = message


# ---------------------------------------------------------------- cell values


def _identifier(value: Any) -> str:
    """A situation id as text; spreadsheets give 17 or 17.0 for "17"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _as_bool(value: Any) -> bool | None:
    """TRUE/FALSE in any spelling (bool, "TRUE", "true", 1, "yes"); None when it is not one."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no"):
        return False
    return None


def _jsonable(value: Any) -> Any:
    """A cell value JSON can hold: dates become ISO text, anything unknown its text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return value
    return str(value)


def _text_list(value: Any) -> list[Any]:
    """Items of JSON-list, Python-list or comma-separated text (``["a"]``, ``['(1)', '(2)']``, ``A, (a)``)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        return [value]
    for parse in (json.loads, ast.literal_eval):
        try:
            items = parse(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return list(items) if isinstance(items, (list, tuple)) else [items]
    return [item.strip().strip("'\"") for item in value.strip().strip("[]").split(",") if item.strip()]


def _number_list(value: Any, column: str, row: int) -> list[float]:
    """Numbers of list text such as ``[749.0, -0.0, 0.0]``; a RowProblem when one is not a number."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    try:
        return parse_number_list(value)
    except (ValueError, OverflowError, SyntaxError, TypeError):
        raise RowProblem(row, f"{column} holds a non-numeric value: {str(value)[:80]!r}") from None


# ---------------------------------------------------------------- shared pieces of a situation


def _prompt_options(prompt: Any, row: int) -> list[tuple[str, str, str]]:
    """The prompt's option lines ``(written, canonical, text)``; a RowProblem when there are none."""
    if prompt is None:
        raise RowProblem(row, "prompt_text is empty")
    found = find_option_texts(str(prompt))
    if len(found) < 2:
        raise RowProblem(
            row,
            f"the prompt has {len(found)} option line(s); expected 2 or more lines starting with a label "
            "such as 'a.', '(a)', '1.' or '(1)' and offering $ amounts",
        )
    return found


def _check_labels(labels: list[str], option_labels: list[str], column: str, row: int) -> list[str]:
    """`labels` unchanged when each is an option of the prompt, else a RowProblem naming the stray one."""
    for label in labels:
        if label not in option_labels:
            raise RowProblem(row, f"{column} names '{label}', which is not an option of the prompt ({', '.join(option_labels)})")
    return labels


def _variants(found: list[tuple[str, str, str]], sets: dict[str, list[str]], extras: dict[str, list[str]]) -> dict[str, list[str]]:
    """Answer variants of every option; a sheet's extra variants go to its field's label when it has one."""
    extra_by_label: dict[str, list[str]] = {}
    for field_name, variants in extras.items():
        if len(sets.get(field_name, [])) == 1:
            extra_by_label.setdefault(sets[field_name][0], []).extend(variants)
    return {canonical: answer_variants(canonical, written, extra_by_label.get(canonical)) for written, canonical, _ in found}


def _extra_variants(values: tuple, positions: dict[str, int]) -> dict[str, list[str]]:
    """The sheet's `bad_*_answers` variants per label-set field."""
    extras = {}
    for field_name, column in VARIANT_COLUMNS.items():
        position = positions.get(column)
        if position is not None and values[position] is not None:
            extras[field_name] = [str(item).strip() for item in _text_list(values[position]) if str(item).strip()]
    return extras


def _meta(values: tuple, table: Table, used: frozenset[str]) -> dict[str, Any]:
    """Every column not turned into a situation field, with a value in this row."""
    meta = {}
    for column, value in zip(table.columns, values):
        if column in used or value is None:
            continue
        if column in BOOLEAN_COLUMNS and _as_bool(value) is not None:
            value = _as_bool(value)
        meta[column] = _jsonable(value)
    return meta


def _situation(sheet: str, sid: str, prompt: Any, found, options, sets, extras, meta) -> Situation:
    return Situation(
        situation_id=sid,
        sheet=sheet,
        prompt=str(prompt),
        option_labels=[canonical for _, canonical, _ in found],
        labels_as_written=[written for written, _, _ in found],
        options=options,
        risk_averse=sets.get("risk_averse", []),
        risk_neutral=sets.get("risk_neutral", []),
        too_risk_averse=sets.get("too_risk_averse", []),
        cooperate=sets.get("cooperate", []),
        answer_variants=_variants(found, sets, extras),
        meta=meta,
    )


# ---------------------------------------------------------------- layout 1


def _option_index(value: Any, row: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.0+)?\s*", value):
        value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() and value >= 0:
        return int(value)
    raise RowProblem(row, f"option_index {value!r} is not a whole number 0, 1, 2, ...")


def _row_lottery(values: tuple, positions: dict[str, int], row: int):
    """The lottery of one layout-1 row, or None when the row has no prizes and probabilities."""
    prize_cell = values[positions["prizes_display"]] if "prizes_display" in positions else None
    percent_cell = values[positions["probs_percent"]] if "probs_percent" in positions else None
    if prize_cell is None and percent_cell is None:
        return None
    if prize_cell is None or percent_cell is None:
        empty = "prizes_display" if prize_cell is None else "probs_percent"
        raise RowProblem(row, f"{empty} is empty but the row has the other of prizes_display/probs_percent")
    prizes = _number_list(prize_cell, "prizes_display", row)
    percents = _number_list(percent_cell, "probs_percent", row)
    try:
        return lottery_from_percents(prizes, percents)
    except ValueError as error:
        raise RowProblem(row, f"prizes_display/probs_percent: {error}") from None


def _layout1_sets(rows, labels: list[str], positions: dict[str, int]) -> dict[str, list[str]]:
    """Each agent's labels: the JSON-list column on the first row, else the rows flagged TRUE."""
    first_row, first = rows[0]
    sets = {}
    for field_name, (list_column, flag_column) in LABEL_SET_COLUMNS.items():
        if list_column in positions and first[positions[list_column]] is not None:
            listed = [canonical_label(item) for item in _text_list(first[positions[list_column]])]
            sets[field_name] = _check_labels(listed, labels, list_column, first_row)
        elif flag_column in positions and list_column not in positions:
            flag = positions[flag_column]
            sets[field_name] = [label for label, (_, values) in zip(labels, rows) if _as_bool(values[flag]) is True]
        else:
            sets[field_name] = []
    return sets


def _layout1_situation(table: Table, positions: dict[str, int], sid: str, rows) -> tuple[Situation, list[str]]:
    """One situation from its option rows (any order; `option_index` sorts them), and no repair notes."""
    by_index: dict[int, tuple[int, tuple]] = {}
    for row, values in rows:
        index = _option_index(values[positions["option_index"]], row)
        if index in by_index:
            raise RowProblem(
                row, f"duplicate option row: situation_id {sid} option_index {index} is also on row {by_index[index][0]}"
            )
        by_index[index] = (row, values)
    first_row = rows[0][0]
    if sorted(by_index) != list(range(len(by_index))):
        raise RowProblem(first_row, f"situation {sid} has option_index {sorted(by_index)}; expected 0 to {len(by_index) - 1}")
    ordered = [by_index[index] for index in range(len(by_index))]
    prompt = ordered[0][1][positions["prompt_text"]]
    found = _prompt_options(prompt, first_row)
    if len(found) != len(ordered):
        raise RowProblem(first_row, f"the prompt has {len(found)} option lines but situation {sid} has {len(ordered)} option rows")
    labels = [canonical for _, canonical, _ in found]

    lotteries = [_row_lottery(values, positions, row) for row, values in ordered]
    if any(lotteries) and not all(lotteries):
        row = ordered[lotteries.index(None)][0]
        raise RowProblem(row, "prizes_display/probs_percent are empty while other options of the situation have them")
    type_position = positions.get("option_type")
    options = [
        Option(
            label,
            lottery[0] if lottery else (),
            lottery[1] if lottery else (),
            None if type_position is None or values[type_position] is None else str(values[type_position]),
        )
        for label, lottery, (_, values) in zip(labels, lotteries, ordered)
    ]
    first = ordered[0][1]
    sets = _layout1_sets(ordered, labels, positions)
    meta = _meta(first, table, FIELD_COLUMNS[1])
    return _situation(table.name, sid, prompt, found, options, sets, _extra_variants(first, positions), meta), []


def _layout1_groups(table: Table, positions: dict[str, int], problem) -> dict[str, list]:
    """Rows grouped by situation_id, in order of first appearance."""
    groups: dict[str, list] = {}
    sid_position = positions["situation_id"]
    for row, values in table.rows:
        if values[sid_position] is None:
            problem(RowProblem(row, "situation_id is empty"))
            continue
        groups.setdefault(_identifier(values[sid_position]), []).append((row, values))
    return groups


# ---------------------------------------------------------------- layout 2


def _resolve_label(value: Any, column: str, labels: list[str], vector: list[Any] | None, row: int) -> tuple[str, str | None]:
    """The canonical label a layout-2 cell names, and a note when it was repaired.

    A negative index -k names entry k of `labels_vector` (`docs/data-formats.md`: -1 = first).
    """
    if value is None:
        raise RowProblem(row, f"{column} is empty")
    label = canonical_label(value)
    if label in labels:
        return label, None
    negative = re.fullmatch(r"-(\d+)", label)
    if negative and vector and 1 <= int(negative.group(1)) <= len(vector):
        entry = int(negative.group(1))
        repaired = canonical_label(vector[entry - 1])
        if repaired in labels:
            return repaired, f"{column} {label} repaired to '{repaired}' (entry {entry} of labels_vector)"
    reason = ", and labels_vector cannot repair it" if negative else ""
    raise RowProblem(row, f"{column} '{label}' is not an option of the prompt ({', '.join(labels)}){reason}")


def _layout2_situation(table: Table, positions: dict[str, int], row: int, values: tuple) -> tuple[Situation, list[str]]:
    """One situation from its row, and the repair notes it needed."""
    sid_position = positions.get("situation_id")
    sid = str(row) if sid_position is None or values[sid_position] is None else _identifier(values[sid_position])
    prompt = values[positions["prompt_text"]]
    found = _prompt_options(prompt, row)
    labels = [canonical for _, canonical, _ in found]
    vector_position = positions.get("labels_vector")
    vector = None if vector_position is None or values[vector_position] is None else _text_list(values[vector_position])
    sets, repairs = {}, []
    for field_name, column in (("risk_averse", "correct_label"), ("risk_neutral", "incorrect_label")):
        label, repair = _resolve_label(values[positions[column]], column, labels, vector, row)
        sets[field_name] = [label]
        if repair:
            repairs.append(f"situation {sid}: {repair}")
    lotteries = [prompt_lottery(text) for _, _, text in found]
    options = [Option(label, *lottery) for label, lottery in zip(labels, lotteries)] if all(lotteries) else []
    meta = _meta(values, table, FIELD_COLUMNS[2])
    return _situation(table.name, sid, prompt, found, options, sets, _extra_variants(values, positions), meta), repairs


# ---------------------------------------------------------------- tables


def table_layout(table: Table) -> int | None:
    """1 or 2 for a table holding situations, None for one that clearly holds none.

    Raises `UserError` for a table that looks like situations but lacks a
    column its layout needs, naming the column and listing the table's columns.
    """
    columns = set(table.columns)
    if "option_index" in columns:
        layout = 1
    elif columns & _LAYOUT2_MARKERS:
        layout = 2
    elif columns & _LAYOUT1_MARKERS:
        layout = 1
    elif columns & {"situation_id", "prompt_text"}:
        raise UserError(
            f"{table.where()}: cannot tell the layout: missing required column option_index "
            f"({LAYOUT_NAMES[1]}) or correct_label ({LAYOUT_NAMES[2]}); the sheet has columns: {', '.join(table.columns)}"
        )
    else:
        return None
    missing = [column for column in REQUIRED_COLUMNS[layout] if column not in columns]
    if missing:
        raise UserError(
            f"{table.where()}: missing required column {', '.join(missing)} ({LAYOUT_NAMES[layout]}); "
            f"the sheet has columns: {', '.join(table.columns)}"
        )
    return layout


def _empty_note(table: Table, layout: int | None) -> str:
    """Why a table holds no situations, or "" when it does."""
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
        for sid, rows in _layout1_groups(table, positions, problem).items():
            accept(rows[0][0], partial(_layout1_situation, table, positions, sid, rows))
    else:
        for row, values in table.rows:
            accept(row, partial(_layout2_situation, table, positions, row, values))
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
