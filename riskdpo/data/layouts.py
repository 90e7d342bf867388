"""Building situations from the rows of a table, in either layout of the spreadsheet format.

* layout 1, one row per option: rows sharing `situation_id` form a situation,
  `option_index` (0-based) orders them, `prizes_display` + `probs_percent` give
  each option's lottery (which must be the one its prompt line shows, within the
  sheet's `rounding_mode`: `riskdpo.data.prompt_agreement`), and the label-set columns (`CARA_correct_labels`, ...)
  or, failing those, the `is_best_*_display` TRUE flags give each agent's best
  options. Columns that describe the whole situation (`SITUATION_COLUMNS`:
  the prompt, the label sets, `num_options`, ...) repeat on every option row
  and must agree there; a disagreement is a data error naming both rows, never
  resolved by taking the first row;
* layout 2, one row per situation: `correct_label` (risk-averse) and
  `incorrect_label` (risk-neutral), with negative-index corruption repaired from
  `labels_vector` (-1 = its first entry, -2 = its second: the format's rule,
  not Python's negative indexing).

Option labels always come from the prompt's option lines, so a label in the
sheet that the prompt does not offer is a data error. Layout 2 has no numeric
columns; its lotteries are read from the option lines
(`riskdpo.data.lotteries.prompt_lottery`). Every situation built here passes
`riskdpo.data.situations.situation_problem`, the check every later reader
applies too. Data errors of one situation raise `RowProblem`; errors of a
whole table (a missing column) raise `UserError`.
"""

from __future__ import annotations

import re
from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.data.cells import RowProblem, as_bool, identifier, jsonable, number_list, text_list
from riskdpo.data.labels import answer_variants, canonical_label, find_option_texts
from riskdpo.data.lotteries import lottery_from_percents, prompt_lottery
from riskdpo.data.prompt_agreement import lottery_disagreements
from riskdpo.data.situations import Option, Situation, situation_problem
from riskdpo.data.row_checks import check_consistent, check_row_cells
from riskdpo.data.tables import Table

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
#: Layout-1 columns that describe the whole situation: every option row repeats
#: them, and rows that disagree are an error (no row "wins").
SITUATION_COLUMNS = (
    "prompt_text",
    "num_options",
    "low_bucket_label",
    *(column for column, _ in LABEL_SET_COLUMNS.values()),
    *VARIANT_COLUMNS.values(),
)
#: Columns that only make sense together: a table with one needs the other.
PAIRED_COLUMNS = (("prizes_display", "probs_percent"),)


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
            extras[field_name] = [str(item).strip() for item in text_list(values[position]) if str(item).strip()]
    return extras


def _meta(values: tuple, table: Table, used: frozenset[str]) -> dict[str, Any]:
    """Every column not turned into a situation field, with a value in this row."""
    meta = {}
    for column, value in zip(table.columns, values):
        if column in used or value is None:
            continue
        if column in BOOLEAN_COLUMNS and as_bool(value) is not None:
            value = as_bool(value)
        meta[column] = jsonable(value)
    return meta


def _situation(sheet: str, sid: str, prompt: Any, found, options, sets, extras, meta, row: int) -> Situation:
    """The situation, once it passes `situation_problem` (the rule set every reader applies)."""
    situation = Situation(
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
    problem = situation_problem(situation)
    if problem:
        raise RowProblem(row, f"situation {sid}: {problem}")
    return situation


# ---------------------------------------------------------------- layout 1


def _option_index(value: Any, row: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.0+)?\s*", value):
        value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() and value >= 0:
        return int(value)
    raise RowProblem(row, f"option_index {value!r} is not a whole number 0, 1, 2, ...")


def _row_lottery(values: tuple, positions: dict[str, int], row: int, line: str, option: str):
    """The lottery of one layout-1 row, or None when the row has no prizes and probabilities.

    The cells must show the lottery option line `line` of the prompt shows, within
    the row's `rounding_mode` (`riskdpo.data.prompt_agreement`); every disagreement is named.
    """
    prize_cell = values[positions["prizes_display"]] if "prizes_display" in positions else None
    percent_cell = values[positions["probs_percent"]] if "probs_percent" in positions else None
    if prize_cell is None and percent_cell is None:
        return None
    if prize_cell is None or percent_cell is None:
        empty = "prizes_display" if prize_cell is None else "probs_percent"
        raise RowProblem(row, f"{empty} is empty but the row has the other of prizes_display/probs_percent")
    prizes = number_list(prize_cell, "prizes_display", row)
    percents = number_list(percent_cell, "probs_percent", row)
    try:
        lottery = lottery_from_percents(prizes, percents)
    except ValueError as error:
        raise RowProblem(row, f"prizes_display/probs_percent: {error}") from None
    rounding = values[positions["rounding_mode"]] if "rounding_mode" in positions else None
    disagreements = lottery_disagreements(line, prizes, percents, None if rounding is None else str(rounding))
    if disagreements:
        raise RowProblem(row, f"{option}: the lottery cells disagree with its line in the prompt ({'; '.join(disagreements)})")
    return lottery


def _layout1_sets(rows, labels: list[str], positions: dict[str, int]) -> dict[str, list[str]]:
    """Each agent's labels: the JSON-list column on the first row, else the rows flagged TRUE."""
    first_row, first = rows[0]
    sets = {}
    for field_name, (list_column, flag_column) in LABEL_SET_COLUMNS.items():
        if list_column in positions and first[positions[list_column]] is not None:
            listed = [canonical_label(item) for item in text_list(first[positions[list_column]])]
            sets[field_name] = _check_labels(listed, labels, list_column, first_row)
        elif flag_column in positions and list_column not in positions:
            flag = positions[flag_column]
            sets[field_name] = [label for label, (_, values) in zip(labels, rows) if as_bool(values[flag]) is True]
        else:
            sets[field_name] = []
    return sets


def layout1_situation(table: Table, positions: dict[str, int], sid: str, rows) -> tuple[Situation, list[str]]:
    """One situation from its option rows (any order; `option_index` sorts them), and no repair notes."""
    for row, values in rows:
        check_row_cells(table, REQUIRED_COLUMNS[1], row, values)
    check_consistent(positions, sid, rows, SITUATION_COLUMNS)
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

    lotteries = [_row_lottery(values, positions, row, line, f"situation {sid}, option {written}")
                 for (row, values), (written, _, line) in zip(ordered, found)]
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
    return _situation(table.name, sid, prompt, found, options, sets, _extra_variants(first, positions), meta, first_row), []


def layout1_groups(table: Table, positions: dict[str, int], problem) -> dict[str, list]:
    """Rows grouped by situation_id, in order of first appearance."""
    groups: dict[str, list] = {}
    sid_position = positions["situation_id"]
    for row, values in table.rows:
        if values[sid_position] is None:
            lacks = "situation_id" in table.absent.get(row, ())
            problem(RowProblem(row, "the row's object has no key situation_id" if lacks else "situation_id is empty"))
            continue
        groups.setdefault(identifier(values[sid_position]), []).append((row, values))
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


def layout2_situation(table: Table, positions: dict[str, int], row: int, values: tuple) -> tuple[Situation, list[str]]:
    """One situation from its row, and the repair notes it needed."""
    check_row_cells(table, REQUIRED_COLUMNS[2], row, values)
    sid_position = positions.get("situation_id")
    sid = str(row) if sid_position is None or values[sid_position] is None else identifier(values[sid_position])
    prompt = values[positions["prompt_text"]]
    found = _prompt_options(prompt, row)
    labels = [canonical for _, canonical, _ in found]
    vector_position = positions.get("labels_vector")
    vector = None if vector_position is None or values[vector_position] is None else text_list(values[vector_position])
    sets, repairs = {}, []
    for field_name, column in (("risk_averse", "correct_label"), ("risk_neutral", "incorrect_label")):
        label, repair = _resolve_label(values[positions[column]], column, labels, vector, row)
        sets[field_name] = [label]
        if repair:
            repairs.append(f"situation {sid}: {repair}")
    lotteries = [prompt_lottery(text) for _, _, text in found]
    options = [Option(label, *lottery) for label, lottery in zip(labels, lotteries)] if all(lotteries) else []
    meta = _meta(values, table, FIELD_COLUMNS[2])
    return _situation(table.name, sid, prompt, found, options, sets, _extra_variants(values, positions), meta, row), repairs


# ---------------------------------------------------------------- tables


def table_layout(table: Table) -> int | None:
    """1 or 2 for a table holding situations, None for one that holds none.

    A table holds situations when it has a `prompt_text` column or a column
    only a layout has (`option_index`, `correct_label`, ...); any other table
    (notes, numbers, a chart sheet) holds none. Raises `UserError` for a table
    that holds situations but cannot be read: a header that repeats a column,
    a column its layout needs, or one of two columns that go together
    (`PAIRED_COLUMNS`), naming the missing column and listing the table's columns.
    """
    columns = set(table.columns)
    if "option_index" in columns:
        layout = 1
    elif columns & _LAYOUT2_MARKERS:
        layout = 2
    elif columns & _LAYOUT1_MARKERS:
        layout = 1
    elif "prompt_text" in columns:
        raise UserError(
            f"{table.where()}: cannot tell the layout: missing required column option_index "
            f"({LAYOUT_NAMES[1]}) or correct_label ({LAYOUT_NAMES[2]}); the sheet has columns: {', '.join(table.columns)}"
        )
    else:
        return None
    if table.repeated:
        raise UserError(f"{table.where(table.header_row)}: the header repeats column(s) {', '.join(table.repeated)}")
    missing = [column for column in REQUIRED_COLUMNS[layout] if column not in columns]
    missing += [
        column for pair in PAIRED_COLUMNS if layout == 1 and columns & set(pair) for column in pair if column not in columns
    ]
    if missing:
        raise UserError(
            f"{table.where()}: missing required column {', '.join(missing)} ({LAYOUT_NAMES[layout]}); "
            f"the sheet has columns: {', '.join(table.columns)}"
        )
    return layout
