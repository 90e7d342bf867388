"""Reading tables of rows from .xlsx workbooks, .csv files and .json row dumps: the one reader.

A *table* is one sheet (or one csv/json file): a header of column names and the
data rows under it, each row a tuple of cell values aligned with the header.
Rows keep their spreadsheet row number as Excel shows it (header = row 1), so
every message can point at the row a user sees. A JSON dump (an array of row
objects, as `pandas.DataFrame.to_json(orient="records")` writes) counts its
records the same way: record k is row k + 1.

Cells that are empty (None, blank text, NaN) are normalised to None here, once,
so that the converter only ever asks "is it None?". Nothing here knows about
situations; `riskdpo.data.convert` turns tables into situations.

Workbooks are read here only (`riskdpo.data.workbook` writes them, and reads
an existing one through `read_tables(..., header=False)` to append to it), and
files as users have them are told apart from broken ones: a chart sheet is
listed as one and holds no rows; an encrypted (password-protected) workbook,
which Excel saves as an OLE compound file rather than a zip, is reported as
encrypted; a .csv field that never closes its quote is reported with its row.

Speed: a 30,000-row workbook is read with openpyxl's read-only streaming mode
(`values_only=True`), which yields plain tuples and avoids building a cell
object per value; the only per-cell Python work is the emptiness check.
"""

from __future__ import annotations

import contextlib
import csv
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from xml.etree.ElementTree import ParseError

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import check_input, read_json

#: File types `read_tables` understands, by suffix.
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
TABLE_SUFFIXES = WORKBOOK_SUFFIXES + (".csv", ".json")
#: Excel's most characters in one cell; longer text is cut to it.
EXCEL_CELL_LIMIT = 32_767
#: The first bytes of an OLE compound file: an encrypted workbook, or an old .xls.
_COMPOUND_FILE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: The stream an encrypted workbook's compound file holds (its name as stored, UTF-16).
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
#: What openpyxl raises on a damaged file, anywhere from opening to the last row
#: (a bad zip, a bad deflate stream, XML cut short, a part that is missing).
_DAMAGED_WORKBOOK = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError, TypeError,
                     AttributeError, IndexError, ParseError)


@dataclass
class Table:
    """One sheet of rows: `rows` holds ``(row_number, values)`` with values aligned to `columns`.

    The one row type of reading and writing (`riskdpo.data.workbook.write_sheets`
    writes `columns` as row 1 and each row at its number). `repeated` lists
    header names that occur twice (the table cannot be read by column name);
    `note` says why a sheet has no rows at all (a chart sheet). `absent` holds,
    per row of a JSON dump, the keys its object lacks (an empty cell and a
    missing key both read as None, but only the first is "empty").
    """

    path: Path | None
    name: str
    sheet: str | None
    columns: list[Any]
    rows: list[tuple[int, tuple[Any, ...]]]
    header_row: int = 1
    repeated: list[str] = field(default_factory=list)
    note: str = ""
    absent: dict[int, frozenset[str]] = field(default_factory=dict)

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
    header_row = 1
    keep: list[int] = []
    rows: list[tuple[int, tuple[Any, ...]]] = []
    for number, values in numbered_rows:
        if header is None:
            names = [None if is_missing(value) else str(value).strip() for value in values]
            if not any(names):
                continue
            keep = [position for position, column in enumerate(names) if column]
            header, header_row = [names[position] for position in keep], number
            width = max(keep) + 1
            contiguous = len(keep) == width  # no unnamed column to drop
            continue
        cells = _clean_row(values, width)
        if any(cell is not None for cell in cells):
            rows.append((number, cells if contiguous else tuple(cells[position] for position in keep)))
    header = header or []
    repeated = sorted({column for column in header if header.count(column) > 1})
    return Table(path, name, sheet, header, rows, header_row, repeated)


def _raw_table(path: Path, name: str, sheet: str | None, numbered_rows: Iterable[tuple[int, Sequence[Any]]]) -> Table:
    """Every row exactly as stored: row 1 is the header, nothing is cleaned or dropped."""
    rows = [(number, tuple(values)) for number, values in numbered_rows]
    header = list(rows[0][1]) if rows else []
    return Table(path, name, sheet, header, rows[1:])


def _refuse_compound_file(path: Path) -> None:
    """A `UserError` for a workbook Excel saved as an OLE compound file: encrypted, or an old .xls."""
    with open(path, "rb") as handle:
        if handle.read(len(_COMPOUND_FILE_MAGIC)) != _COMPOUND_FILE_MAGIC:
            return
    if _ENCRYPTED_STREAM in path.read_bytes():
        raise UserError(
            f"{path}: the workbook is encrypted (password protected); remove the password in Excel "
            "(File > Info > Protect Workbook > Encrypt with Password) and save it again"
        )
    raise UserError(f"{path}: an old binary Excel file (.xls) under an .xlsx name; save it as .xlsx")


@contextlib.contextmanager
def open_workbook(path: Path, formulas: bool = False) -> Iterator[Any]:
    """An openpyxl workbook in read-only streaming mode; a `UserError` when the file is none.

    Cells give their cached values, or with `formulas` the formulas themselves.
    """
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    _refuse_compound_file(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=not formulas)
    except (InvalidFileException, *_DAMAGED_WORKBOOK) as error:
        raise UserError(f"{path}: not a readable .xlsx workbook ({type(error).__name__})") from None
    try:
        yield workbook
    finally:
        workbook.close()


def _workbook_tables(path: Path, sheets: Sequence[str] | None, header: bool = True) -> list[Table]:
    """Every sheet of an .xlsx workbook (or the named ones), read in streaming mode.

    A chart sheet becomes an empty table whose `note` says so; naming one in
    `sheets` is a `UserError`, since it holds no rows.
    """
    build = _make_table if header else _raw_table
    with open_workbook(path, formulas=not header) as workbook:
        names = list(workbook.sheetnames)
        charts = {chartsheet.title for chartsheet in workbook.chartsheets}
        wanted = list(sheets) if sheets else names
        absent = [sheet for sheet in wanted if sheet not in names]
        if absent:
            raise UserError(f"{path}: no sheet named {', '.join(repr(s) for s in absent)} (sheets: {', '.join(names)})")
        named_charts = [sheet for sheet in sheets or () if sheet in charts]
        if named_charts:
            raise UserError(f"{path}, sheet '{named_charts[0]}': a chart sheet, it holds no rows")
        tables = []
        for sheet in wanted:
            if sheet in charts:
                tables.append(Table(path, sheet, sheet, [], [], note="a chart sheet"))
                continue
            try:
                numbered = list(enumerate(workbook[sheet].iter_rows(values_only=True), start=1))
            except _DAMAGED_WORKBOOK as error:
                raise UserError(f"{path}, sheet '{sheet}': unreadable, the file is damaged ({type(error).__name__})") from None
            tables.append(build(path, sheet, sheet, numbered))
        return tables


def _csv_rows(path: Path, reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Numbered records of a csv reader; a `UserError` with the row number when one is broken.

    The reader is strict, so a quote that never closes is an error instead of
    silently swallowing every later row into one field; a field past
    `csv.field_size_limit` (usually the same unclosed quote) names its row too.
    """
    number = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            hint = " (a quote that never closes?)" if "field limit" in str(error) or "end of data" in str(error) else ""
            raise UserError(f"{path}, row {number + 1}: not readable as CSV: {error}{hint}") from None
        number += 1
        yield number, values


def _csv_table(path: Path) -> Table:
    """A .csv file as one table named after the file stem (UTF-8, BOM allowed)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return _make_table(path, path.stem, None, _csv_rows(path, csv.reader(handle, strict=True)))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the sheet as 'CSV UTF-8'") from None


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
    table = _make_table(path, path.stem, None, numbered)
    table.absent = {
        position + 2: frozenset(header) - set(record) for position, record in enumerate(records) if len(record) < len(header)
    }
    return table


def read_tables(path: str | Path, sheets: Sequence[str] | None = None, header: bool = True) -> list[Table]:
    """Read the tables of one input file.

    For a workbook, every sheet (or only `sheets`); a .csv or .json file is
    one table named after its stem. Raises `UserError` for a missing file, an
    unsupported type, an unreadable file or a sheet name the workbook lacks.
    With `header=False` (workbooks only) every row comes back as stored, with
    formulas, to be written again unchanged.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix == ".xls":
        raise UserError(f"{source}: old binary .xls workbooks are not supported; save it as .xlsx")
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"{source}: unsupported file type '{source.suffix}'; expected .xlsx, .csv or .json")
    check_input(source)
    if suffix in WORKBOOK_SUFFIXES:
        return _workbook_tables(source, sheets, header)
    if suffix == ".csv":
        return [_csv_table(source)]
    return [_json_table(source)]
