"""Class 6 of issue 12, workbooks as users have them: chart sheets, notes and
numbers next to the data, password protection, cells Excel cut at its limit,
huge or broken CSV fields, and `generate --append` to a workbook holding more
than values. Each is read, skipped and said so, or refused in one line; nothing
is silently lost.
"""

import json
import struct
from pathlib import Path

from click.testing import CliRunner
from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, Reference

from helpers import assert_refused, tree_digest
from riskdpo.cli import main
from riskdpo.data.situations import load_situations
from test_convert import SITUATION_1, SITUATION_2, layout1_rows, layout2_row, prompt_for, write_csv, write_xlsx

EXCEL_CELL_LIMIT = 32_767


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def bar_chart(worksheet):
    chart = BarChart()
    chart.add_data(Reference(worksheet, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    return chart


def book_with_extras(path: Path) -> Path:
    """Situations in 'train', then a chart sheet, a notes sheet, a numbers sheet whose header repeats,
    and review notes keyed by situation_id."""
    write_xlsx(path, {"train": layout1_rows(SITUATION_1) + layout1_rows(SITUATION_2)})
    workbook = load_workbook(path)
    workbook.create_chartsheet("chart").add_chart(bar_chart(workbook["train"]))
    notes = workbook.create_sheet("notes")
    notes.append(["Collected in March; situation_id 2 was checked twice."])
    numbers = workbook.create_sheet("numbers")
    numbers.append([1, 1, 2])
    numbers.append([3, 5, 8])
    reviews = workbook.create_sheet("reviews")  # notes keyed by situation: still no prompts, no situations
    reviews.append(["situation_id", "comment"])
    reviews.append([2, "checked twice"])
    workbook.save(path)
    return path


def compound_file(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file (CFB version 3, 512-byte sectors) holding `streams`.

    Excel saves a password-protected workbook as such a file with the streams
    EncryptionInfo and EncryptedPackage instead of as a zip. Streams here are
    4096 bytes or more, so they live in regular sectors (no mini stream).
    """
    sector, end, free, fat_sector, no_stream = 512, 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
    fat, data, starts = [fat_sector, end], b"", []  # sector 0: the FAT; sector 1: the directory
    for content in streams.values():
        padded = content + b"\0" * (-len(content) % sector)
        first, count = len(fat), len(padded) // sector
        fat += [*range(first + 1, first + count), end]
        starts.append(first)
        data += padded

    def entry(name: str, kind: int, child=no_stream, right=no_stream, start=end, size=0) -> bytes:
        encoded = (name + "\0").encode("utf-16-le") if name else b""
        return (encoded.ljust(64, b"\0") + struct.pack("<HBB3I", len(encoded), kind, 1, no_stream, right, child)
                + bytes(16 + 4 + 16) + struct.pack("<IQ", start, size))

    names = list(streams)
    entries = [entry("Root Entry", 5, child=1)] + [
        entry(name, 2, right=index + 2 if index + 1 < len(names) else no_stream, start=starts[index], size=len(streams[name]))
        for index, name in enumerate(names)
    ]
    entries += [entry("", 0)] * (-len(entries) % 4)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
              + struct.pack("<5H6s9I", 0x3E, 3, 0xFFFE, 9, 6, bytes(6), 0, 1, 1, 0, 4096, end, 0, end, 0)
              + struct.pack("<109I", 0, *[free] * 108))
    return header + struct.pack("<128I", *fat, *[free] * (128 - len(fat))) + b"".join(entries) + data


def test_chart_notes_and_numbers_sheets_are_skipped_and_listed(tmp_path):
    book = book_with_extras(tmp_path / "book.xlsx")
    output = tmp_path / "situations.json"
    result = run("convert", book, "-o", output)
    assert result.exit_code == 0, result.output
    assert [s.situation_id for s in load_situations(output)] == ["1", "2"]
    assert "sheet 'chart': skipped: a chart sheet" in result.stdout
    assert "sheet 'notes': skipped: holds no situations" in result.stdout
    assert "sheet 'numbers': skipped: holds no situations" in result.stdout
    assert "sheet 'reviews': skipped: holds no situations" in result.stdout


def test_naming_a_chart_or_notes_sheet_is_refused(tmp_path):
    book = book_with_extras(tmp_path / "book.xlsx")
    before = tree_digest(tmp_path)
    assert_refused(run("convert", book, "--sheet", "chart", "-o", tmp_path / "out.json"), "sheet 'chart'", "chart sheet")
    assert_refused(run("convert", book, "--sheet", "notes", "-o", tmp_path / "out.json"), "sheet 'notes'", "holds no situations")
    assert tree_digest(tmp_path) == before


def test_a_chart_inside_the_data_sheet_does_not_stop_reading(tmp_path):
    book = write_xlsx(tmp_path / "book.xlsx", {"train": layout1_rows(SITUATION_1)})
    workbook = load_workbook(book)
    workbook["train"].add_chart(bar_chart(workbook["train"]), "T2")
    workbook.save(book)
    result = run("convert", book, "-o", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert [s.risk_averse for s in load_situations(tmp_path / "out.json")] == [SITUATION_1["risk_averse"]]


def test_an_encrypted_workbook_is_named_encrypted_not_a_zip_error(tmp_path):
    book = tmp_path / "locked.xlsx"
    book.write_bytes(compound_file({"EncryptionInfo": bytes(range(256)) * 16, "EncryptedPackage": bytes(8192)}))
    before = tree_digest(tmp_path)
    assert_refused(run("convert", book, "-o", tmp_path / "out.json"), "locked.xlsx", "encrypted (password protected)")
    assert_refused(run("generate", "-o", book, "--append", "--situations", "2"), "encrypted")
    assert tree_digest(tmp_path) == before


def test_a_cell_at_excels_limit_is_reported_strict_and_counted_lenient(tmp_path):
    long_prompt = prompt_for(SITUATION_1)
    long_prompt += "\n" + "x" * (EXCEL_CELL_LIMIT - len(long_prompt) - 1)
    rows = layout1_rows(SITUATION_1, prompt_text=long_prompt) + layout1_rows(SITUATION_2)
    book = write_xlsx(tmp_path / "cut.xlsx", {"train": rows})
    output = tmp_path / "out.json"
    assert_refused(run("convert", book, "-o", output), "sheet 'train', row 2", "prompt_text holds 32,767 characters", "cut")
    assert not output.exists()
    lenient = run("convert", book, "-o", output, "--lenient")
    assert lenient.exit_code == 0, lenient.output
    assert [s.situation_id for s in load_situations(output)] == ["2"]
    assert "Skipped as bad (lenient): 1" in lenient.stdout and "32,767 characters" in lenient.stdout


def test_a_huge_csv_field_names_its_row(tmp_path):
    rows = [layout2_row(SITUATION_1), layout2_row(SITUATION_2, prompt_text="x" * 200_000)]
    source = write_csv(tmp_path / "huge.csv", rows)
    before = tree_digest(tmp_path)
    assert_refused(run("convert", source, "-o", tmp_path / "out.json"), "huge.csv, row 3", "field larger than field limit")
    assert tree_digest(tmp_path) == before


def test_a_quote_that_never_closes_names_its_row_instead_of_swallowing_the_rest(tmp_path):
    source = tmp_path / "open.csv"
    source.write_text("situation_id,prompt_text,correct_label,incorrect_label\n"
                      f'1,"{prompt_for(SITUATION_1)},a,b\n'  # the prompt's quote never closes: row 3 would vanish into it
                      f"2,{prompt_for(SITUATION_1).splitlines()[0]},a,b\n", encoding="utf-8")
    assert_refused(run("convert", source, "-o", tmp_path / "out.json"), "open.csv, row 2", "quote that never closes")


def test_generate_append_refuses_to_drop_charts_and_leaves_the_workbook_as_it_was(tmp_path):
    with_chart_sheet = book_with_extras(tmp_path / "charts.xlsx")
    embedded = write_xlsx(tmp_path / "embedded.xlsx", {"train": layout1_rows(SITUATION_1)})
    workbook = load_workbook(embedded)
    workbook["train"].add_chart(bar_chart(workbook["train"]), "T2")
    workbook.save(embedded)
    before = tree_digest(tmp_path)
    assert_refused(run("generate", "-o", with_chart_sheet, "--append", "--sheet", "more", "--situations", "2"),
                   "--append would drop", "chart")
    assert_refused(run("generate", "-o", embedded, "--append", "--sheet", "more", "--situations", "2"),
                   "--append would drop", "embedded.xlsx")
    assert tree_digest(tmp_path) == before


def test_generate_append_keeps_every_value_formula_and_row_of_the_other_sheets(tmp_path):
    book = tmp_path / "book.xlsx"
    workbook = Workbook()
    notes = workbook.active
    notes.title = "notes"
    notes.append(["what", None, "count"])
    notes.append(["apples", None, 3])
    notes.append([])
    notes.append(["total", None, "=SUM(C2:C3)"])
    workbook.create_sheet("empty")
    workbook.save(book)
    result = run("generate", "-o", book, "--append", "--sheet", "train", "--situations", "3")
    assert result.exit_code == 0, result.output
    kept = load_workbook(book)
    assert kept.sheetnames == ["notes", "empty", "train"]
    assert [list(row) for row in kept["notes"].iter_rows(values_only=True)] == [
        ["what", None, "count"], ["apples", None, 3], [None, None, None], ["total", None, "=SUM(C2:C3)"]]
    converted = run("convert", book, "--sheet", "train", "-o", tmp_path / "out.json")
    assert converted.exit_code == 0 and len(load_situations(tmp_path / "out.json")) == 3
    assert json.loads((tmp_path / "out.json").read_text())[0]["sheet"] == "train"
