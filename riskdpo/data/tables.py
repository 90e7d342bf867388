"""Reading tables of rows from .xlsx workbooks, .csv files and .json row dumps.

A *table* is one sheet (or one csv/json file): a header of column names and the
data rows under it, each row a tuple of cell values aligned with the header.
Rows keep their spreadsheet row number as Excel shows it (header = row 1), so
every message can point at the row a user sees. A JSON dump (an array of row
objects, as `pandas.DataFrame.to_json(orient="records")` writes) counts its
records the same way: record k is row k + 1.

Cells that are empty (None, blank text, NaN) are normalised to None here, once,
so that the converter only ever asks "is it None?". Nothing here knows about
situations; `riskdpo.data.convert` turns tables into situations.

Speed: a 30,000-row workbook is read with openpyxl's read-only streaming mode
(`values_only=True`), which yields plain tuples and avoids building a cell
object per value; the only per-cell Python work is the emptiness check.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence
from xml.etree.ElementTree import ParseError

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import read_json

#: File types `read_tables` understands, by suffix.
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
TABLE_SUFFIXES = WORKBOOK_SUFFIXES + (".csv", ".json")


@dataclass
class Table:
    """One sheet of rows: `rows` holds ``(row_number, values)`` with values aligned to `columns`."""

    path: Path
    name: str
    sheet: str | None
    columns: list[str]
    rows: list[tuple[int, tuple[Any, ...]]]

    def where(self, row: int | None = None) -> str:
        """Where a message points: ``book.xlsx, sheet 'train', row 5``."""
        parts = [str(self.path)]
        if self.sheet is not None:
            parts.append(f"sheet '{self.sheet}'")
        if row is not None:
            parts.append(f"row {row}")
        return ", ".join(parts)

    def index(self, column: str) -> int | None:
        """Position of `column` in the rows, or None when the table lacks it."""
        try:
            return self.columns.index(column)
        except ValueError:
            return None


def is_missing(value: Any) -> bool:
    """True for an empty cell: None, blank text, or NaN (pandas' empty)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def _clean_row(values: Iterable[Any], width: int) -> tuple[Any, ...]:
    """Cells of one row, empty ones as None, padded or cut to `width`."""
    cells = tuple(None if is_missing(value) else value for value in values)
    if len(cells) < width:
        return cells + (None,) * (width - len(cells))
    return cells[:width]


def _make_table(path: Path, name: str, sheet: str | None, numbered_rows: Iterable[tuple[int, Sequence[Any]]]) -> Table:
    """Build a table from numbered raw rows: the first non-empty row is the header."""
    header: list[str] | None = None
    keep: list[int] = []
    rows: list[tuple[int, tuple[Any, ...]]] = []
    for number, values in numbered_rows:
        if header is None:
            names = [None if is_missing(value) else str(value).strip() for value in values]
            if not any(names):
                continue
            keep = [position for position, column in enumerate(names) if column]
            header = [names[position] for position in keep]
            duplicates = sorted({column for column in header if header.count(column) > 1})
            if duplicates:
                where = Table(path, name, sheet, [], []).where(number)
                raise UserError(f"{where}: the header repeats column(s) {', '.join(duplicates)}")
            width = max(keep) + 1
            contiguous = len(keep) == width  # no unnamed column to drop
            continue
        cells = _clean_row(values, width)
        if any(cell is not None for cell in cells):
            rows.append((number, cells if contiguous else tuple(cells[position] for position in keep)))
    return Table(path, name, sheet, header or [], rows)


def _workbook_tables(path: Path, sheets: Sequence[str] | None) -> list[Table]:
    """Every sheet of an .xlsx workbook (or the named ones), read in streaming mode."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError, ParseError) as error:
        raise UserError(f"{path}: not a readable .xlsx workbook ({type(error).__name__})") from None
    try:
        names = list(workbook.sheetnames)
        wanted = list(sheets) if sheets else names
        absent = [sheet for sheet in wanted if sheet not in names]
        if absent:
            raise UserError(f"{path}: no sheet named {', '.join(repr(s) for s in absent)} (sheets: {', '.join(names)})")
        tables = []
        for sheet in wanted:
            worksheet = workbook[sheet]
            try:
                numbered = enumerate(worksheet.iter_rows(values_only=True), start=1)
                tables.append(_make_table(path, sheet, sheet, numbered))
            except (KeyError, ValueError, TypeError, ParseError) as error:
                raise UserError(f"{path}, sheet '{sheet}': unreadable ({type(error).__name__}: {error})") from None
        return tables
    finally:
        workbook.close()


def _csv_table(path: Path) -> Table:
    """A .csv file as one table named after the file stem (UTF-8, BOM allowed)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return _make_table(path, path.stem, None, enumerate(csv.reader(handle), start=1))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the sheet as 'CSV UTF-8'") from None
    except csv.Error as error:
        raise UserError(f"{path}: not a readable CSV file ({error})") from None


def _json_table(path: Path) -> Table:
    """A .json array of row objects as one table; columns in order of first appearance."""
    records = read_json(path, list, "a JSON array of row objects")
    columns: dict[str, None] = {}
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise UserError(f"{path}, row {position + 2}: expected a JSON object per row")
        columns.update(dict.fromkeys(record))
    header = list(columns)
    numbered = [(1, header)] + [
        (position + 2, [record.get(column) for column in header]) for position, record in enumerate(records)
    ]
    return _make_table(path, path.stem, None, numbered)


def read_tables(path: str | Path, sheets: Sequence[str] | None = None) -> list[Table]:
    """Read the tables of one input file.

    For a workbook, every sheet (or only `sheets`); a .csv or .json file is
    one table named after its stem. Raises `UserError` for a missing file, an
    unsupported type, an unreadable file or a sheet name the workbook lacks.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix == ".xls":
        raise UserError(f"{source}: old binary .xls workbooks are not supported; save it as .xlsx")
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"{source}: unsupported file type '{source.suffix}'; expected .xlsx, .csv or .json")
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if suffix in WORKBOOK_SUFFIXES:
        return _workbook_tables(source, sheets)
    if suffix == ".csv":
        return [_csv_table(source)]
    return [_json_table(source)]
