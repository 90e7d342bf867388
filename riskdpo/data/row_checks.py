"""Checks of spreadsheet rows before they become a situation.

Three ways rows look fine cell by cell and still cannot be right:

* a row of a JSON dump whose object lacks a key the layout needs reads as an
  empty cell; it is named as the missing key instead;
* a text cell of exactly Excel's 32,767 characters is almost surely text Excel
  cut when it was typed or pasted (a prompt without its last options);
* the option rows of one situation repeat the situation's own columns (the
  prompt, the label sets, `num_options`); rows that disagree leave no right
  answer, so the disagreement is an error naming both rows, never settled by
  taking the first row.

Each raises `RowProblem`, which the converter turns into an error (strict) or a
skipped and counted situation (lenient).
"""

from __future__ import annotations

from typing import Any, Sequence

from riskdpo.data.cells import RowProblem
from riskdpo.data.tables import EXCEL_CELL_LIMIT, Table


def check_row_cells(table: Table, needed: Sequence[str], row: int, values: tuple) -> None:
    """A RowProblem for a row that lacks a `needed` key (JSON dumps) or has a cell Excel cut."""
    lacking = [column for column in needed if column in table.absent.get(row, ())]
    if lacking:
        raise RowProblem(row, f"the row's object has no key {', '.join(lacking)} (other rows have it)")
    _check_cut_cells(values, table.columns, row)


def _check_cut_cells(values: tuple, columns: list[str], row: int) -> None:
    """A RowProblem for a text cell of exactly Excel's 32,767-character limit: Excel cut it there.

    Excel silently truncates longer text when a sheet is typed or pasted, so a
    cell at the limit almost surely lost its end (a prompt without its last
    options, a list without its closing bracket).
    """
    for column, value in zip(columns, values):
        if isinstance(value, str) and len(value) == EXCEL_CELL_LIMIT:
            raise RowProblem(
                row, f"{column} holds {EXCEL_CELL_LIMIT:,} characters, Excel's limit for a cell: its text was probably cut there"
            )


def check_consistent(positions: dict[str, int], sid: str, rows, columns: Sequence[str]) -> None:
    """A RowProblem when the option rows of situation `sid` disagree on a cell of `columns`,
    or their number differs from `num_options`."""
    first_row, first = rows[0]
    for column in columns:
        position = positions.get(column)
        if position is None:
            continue
        for row, values in rows[1:]:
            if not _same_cell(values[position], first[position]):
                raise RowProblem(
                    row, f"situation {sid}: {column} differs from its row {first_row} "
                    f"({_difference(values[position], first[position])}); every option row must repeat it"
                )
    if "num_options" in positions and first[positions["num_options"]] is not None:
        stated = first[positions["num_options"]]
        try:
            matches = float(stated) == len(rows)
        except (TypeError, ValueError):
            matches = False
        if not matches:
            raise RowProblem(first_row, f"situation {sid}: num_options is {_shown(stated)} but it has {len(rows)} option rows")


def _same_cell(left: Any, right: Any) -> bool:
    """Equal cells, spellings aside: 2 and 2.0, and text with different outer spaces, are the same."""
    if isinstance(left, str) and isinstance(right, str):
        return left.strip() == right.strip()
    if isinstance(left, (int, float)) and isinstance(right, (int, float)) and not isinstance(left, bool):
        return float(left) == float(right)
    return left == right


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _difference(value: Any, first: Any) -> str:
    """How two cells differ, short: both values, or for long texts where they part."""
    if isinstance(value, str) and isinstance(first, str) and max(len(value), len(first)) > 40:
        at = next((i for i, (a, b) in enumerate(zip(value, first)) if a != b), min(len(value), len(first)))
        return f"from character {at + 1}: {_shown(value[at:at + 30])} vs {_shown(first[at:at + 30])}"
    return f"{_shown(value)} vs {_shown(first)}"
