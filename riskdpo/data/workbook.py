"""Writing .xlsx workbooks reproducibly: the same rows give the same bytes.

openpyxl stamps two clocks into a workbook: `docProps/core.xml` records the save
time as its "modified" property, and every zip entry carries the wall-clock time
it was written. Both are pinned to `FIXED_TIME` here, so that running a
generator twice with the same seed reproduces the file byte for byte (zlib's
compression is itself deterministic for a given zlib version).

Sheets stream through openpyxl's write-only mode, which writes rows as they
come instead of building a cell object per value: a 10,000-situation sheet
(about 35,000 rows) stays fast and small in memory. Adding a sheet to an
existing workbook re-reads its sheets (`riskdpo.data.tables.read_tables`, the
one reader, with formulas kept) and writes them all again. That rewrite keeps
cell values and formulas only, so a workbook holding anything more (charts,
chart sheets, images, comments, pivot tables, macros, defined names, merged
or formatted cells) is refused with one line naming what would be lost:
`--append` never silently drops part of a workbook.
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from pathlib import Path
from typing import Sequence

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_path
from riskdpo.data.tables import Table, read_tables

#: The creation and modification time recorded in every workbook written here.
FIXED_TIME = datetime.datetime(2024, 1, 1)

#: Characters Excel forbids in sheet names; names are at most 31 characters.
_BAD_SHEET_CHARACTERS = re.compile(r"[\[\]:*?/\\]")


#: Parts of an .xlsx package that a rewrite of values and formulas reproduces;
#: any other part (xl/charts/, xl/drawings/, xl/media/, xl/comments1.xml,
#: xl/pivotTables/, xl/vbaProject.bin, a worksheet's _rels, ...) would be lost.
_REWRITTEN_PARTS = re.compile(
    r"\[Content_Types\]\.xml|_rels/\.rels|docProps/[^/]+\.xml|xl/workbook\.xml|xl/_rels/workbook\.xml\.rels"
    r"|xl/worksheets/sheet\d+\.xml|xl/sharedStrings\.xml|xl/styles\.xml|xl/theme/theme\d+\.xml|xl/calcChain\.xml"
)
#: What a rewrite would lose inside a kept part: sheet XML -> what it is, in the user's words.
_LOST_MARKUP = {
    "xl/workbook.xml": ((re.compile(rb"<(\w+:)?definedName\b"), "defined names"),),
    "xl/worksheets/": (
        (re.compile(rb"<(\w+:)?mergeCell\b"), "merged cells"),
        (re.compile(rb"<(\w+:)?c\b[^>]*\ss=\"[1-9]"), "formatted cells"),
        (re.compile(rb"<(\w+:)?(conditionalFormatting|dataValidations|hyperlinks)\b"), "formatting rules or links"),
    ),
}
#: Part folders -> what a user calls them.
_PART_NAMES = {
    "xl/chartsheets/": "chart sheets", "xl/charts/": "charts", "xl/drawings/": "drawings or charts",
    "xl/media/": "images", "xl/pivot": "pivot tables", "xl/vbaProject": "macros", "xl/comments": "comments",
    "xl/tables/": "Excel tables", "xl/externalLinks/": "external links",
}


def check_sheet_title(title: str) -> None:
    """Raise `UserError` unless Excel accepts `title` as a sheet name."""
    if not title or len(title) > 31 or _BAD_SHEET_CHARACTERS.search(title):
        raise UserError(f"sheet name {title!r}: a sheet name has 1-31 characters and none of [ ] : * ? / \\")


def rewrite_loss(path: str | Path) -> str | None:
    """What rewriting the workbook at `path` from its values and formulas would lose, or None.

    Looks at the package's parts (a chart is a part of its own) and at the
    markup of the parts that are rewritten (merged and formatted cells).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not _REWRITTEN_PARTS.fullmatch(name):
                    kind = next((what for folder, what in _PART_NAMES.items() if name.startswith(folder)), "content")
                    return f"{kind} ({name})"
                for prefix, markups in _LOST_MARKUP.items():
                    if name.startswith(prefix):
                        data = archive.read(name)
                        for pattern, what in markups:
                            if pattern.search(data):
                                return f"{what} ({name})"
    except (zipfile.BadZipFile, OSError):
        return None  # not a zip: reading it says why, in one line
    return None


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


def write_sheets(path: str | Path, sheets: Sequence[Table]) -> None:
    """Write `sheets` as one .xlsx workbook at `path`, atomically and reproducibly.

    Each table's `columns` become row 1 and each row goes to its row number
    (gaps stay empty rows), so a table read with `read_tables(header=False)`
    is written back where it was.
    """
    from openpyxl import Workbook
    from openpyxl.xml.functions import tostring

    workbook = Workbook(write_only=True)
    for sheet in sheets:
        check_sheet_title(sheet.name)
        worksheet = workbook.create_sheet(sheet.name)
        worksheet.append(list(sheet.columns))
        written = 1
        for number, row in sheet.rows:
            for _ in range(number - written - 1):
                worksheet.append([])
            worksheet.append(list(row))
            written = number
    raw = io.BytesIO()
    workbook.save(raw)
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    core_xml = tostring(workbook.properties.to_tree())
    with atomic_path(path) as tmp:
        tmp.write_bytes(_pinned_archive(raw.getvalue(), core_xml))


def add_sheet(path: str | Path, sheet: Table, append: bool = False) -> None:
    """Write `sheet` to the workbook at `path`.

    Without `append` the workbook holds `sheet` only (any old file is
    replaced). With `append` the existing workbook's sheets are kept, in order,
    and `sheet` comes last; a sheet of the same name, or a workbook holding
    more than values (`rewrite_loss`), is a `UserError`, so that nothing is
    overwritten or dropped by accident.
    """
    target = Path(path)
    if target.suffix.lower() != ".xlsx":
        raise UserError(f"{target}: the output must be an .xlsx workbook")
    check_sheet_title(sheet.name)
    existing = []
    if append and target.exists():
        loss = rewrite_loss(target)
        if loss:
            raise UserError(
                f"{target}: --append would drop the workbook's {loss}; add the sheet in Excel, or write a new workbook"
            )
        existing = read_tables(target, header=False)
    if any(old.name.lower() == sheet.name.lower() for old in existing):  # Excel ignores case
        raise UserError(f"{target}: already has a sheet named {sheet.name!r}; choose another --sheet")
    write_sheets(target, existing + [sheet])
