"""Reading one spreadsheet cell: ids, TRUE/FALSE, lists and numbers in the spellings sheets use.

Cells arrive as openpyxl, csv or JSON give them (``17`` or ``17.0`` or
``"17"``; ``TRUE`` as a bool or as text; lists as JSON, Python or
comma-separated text). A cell that cannot be what its column holds raises
`RowProblem` with its row, which the converter turns into an error (strict)
or a skipped, counted situation (lenient).
"""

from __future__ import annotations

import ast
import datetime
import json
from typing import Any

from riskdpo.data.expected_utility import parse_number_list


class RowProblem(Exception):
    """A data error in one situation, at spreadsheet row `row` (internal; becomes a Finding or UserError)."""

    def __init__(self, row: int, message: str):
        super().__init__(message)
        self.row = row
        self.message = message


def identifier(value: Any) -> str:
    """A situation id as text; spreadsheets give 17 or 17.0 for "17"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def as_bool(value: Any) -> bool | None:
    """TRUE/FALSE in any spelling (bool, "TRUE", "true", 1, "yes"); None when it is not one."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no"):
        return False
    return None


def jsonable(value: Any) -> Any:
    """A cell value JSON can hold: dates become ISO text, anything unknown its text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return value
    return str(value)


def text_list(value: Any) -> list[Any]:
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


def number_list(value: Any, column: str, row: int) -> list[float]:
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

