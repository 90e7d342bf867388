"""Writing .xlsx workbooks reproducibly: the same rows give the same bytes.

openpyxl stamps two clocks into a workbook: `docProps/core.xml` records the save
time as its "modified" property, and every zip entry carries the wall-clock time
it was written. Both are pinned to `FIXED_TIME` here, so that running a
generator twice with the same seed reproduces the file byte for byte (zlib's
compression is itself deterministic for a given zlib version).

Sheets stream through openpyxl's write-only mode, which writes rows as they
come instead of building a cell object per value: a 10,000-situation sheet
(about 35,000 rows) stays fast and small in memory. Adding a sheet to an
existing workbook re-reads its sheets as values and writes them all again,
which keeps every sheet written the same way.
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_path

#: The creation and modification time recorded in every workbook written here.
FIXED_TIME = datetime.datetime(2024, 1, 1)

#: Characters Excel forbids in sheet names; names are at most 31 characters.
_BAD_SHEET_CHARACTERS = re.compile(r"[\[\]:*?/\\]")


@dataclass
class SheetData:
    """One sheet to write: its title, the header row, then the data rows."""

    title: str
    header: list[str]
    rows: list[list[Any]]


def check_sheet_title(title: str) -> None:
    """Raise `UserError` unless Excel accepts `title` as a sheet name."""
    if not title or len(title) > 31 or _BAD_SHEET_CHARACTERS.search(title):
        raise UserError(f"sheet name {title!r}: a sheet name has 1-31 characters and none of [ ] : * ? / \\")


def read_sheets(path: str | Path) -> list[SheetData]:
    """Every sheet of an existing workbook as values (first row = header)."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable .xlsx workbook ({type(error).__name__})") from None
    try:
        sheets = []
        for worksheet in workbook.worksheets:
            rows = [list(row) for row in worksheet.iter_rows(values_only=True)]
            header = [str(name) for name in rows[0]] if rows else []
            sheets.append(SheetData(worksheet.title, header, rows[1:]))
        return sheets
    finally:
        workbook.close()


def _pinned_archive(raw: bytes, core_xml: bytes) -> bytes:
    """The zip `raw` rewritten with fixed entry times and `core_xml` as docProps/core.xml."""
    pinned = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as source, zipfile.ZipFile(pinned, "w") as target:
        for entry in source.infolist():
            data = core_xml if entry.filename == "docProps/core.xml" else source.read(entry)
            info = zipfile.ZipInfo(entry.filename, date_time=FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, data)
    return pinned.getvalue()


def write_sheets(path: str | Path, sheets: Sequence[SheetData]) -> None:
    """Write `sheets` as one .xlsx workbook at `path`, atomically and reproducibly."""
    from openpyxl import Workbook
    from openpyxl.xml.functions import tostring

    workbook = Workbook(write_only=True)
    for sheet in sheets:
        check_sheet_title(sheet.title)
        worksheet = workbook.create_sheet(sheet.title)
        worksheet.append(sheet.header)
        for row in sheet.rows:
            worksheet.append(row)
    raw = io.BytesIO()
    workbook.save(raw)
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    core_xml = tostring(workbook.properties.to_tree())
    with atomic_path(path) as tmp:
        tmp.write_bytes(_pinned_archive(raw.getvalue(), core_xml))


def add_sheet(path: str | Path, sheet: SheetData, append: bool = False) -> None:
    """Write `sheet` to the workbook at `path`.

    Without `append` the workbook holds `sheet` only (any old file is
    replaced). With `append` the existing workbook's sheets are kept, in order,
    and `sheet` comes last; a sheet of the same name is a `UserError`, so that
    nothing is overwritten by accident.
    """
    target = Path(path)
    if target.suffix.lower() != ".xlsx":
        raise UserError(f"{target}: the output must be an .xlsx workbook")
    check_sheet_title(sheet.title)
    existing = read_sheets(target) if append and target.exists() else []
    if any(old.title.lower() == sheet.title.lower() for old in existing):  # Excel ignores case
        raise UserError(f"{target}: already has a sheet named {sheet.title!r}; choose another --sheet")
    write_sheets(target, existing + [sheet])
