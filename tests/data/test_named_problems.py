"""Class 9 of issue 12 (the data side): an error names the actual problem in
the user's terms. A column the sheet lacks is named as missing, never reported
as an empty cell; JSON cut short is reported with its line and column.
"""

import json

import pytest
from click.testing import CliRunner

from helpers import assert_refused, tree_digest
from riskdpo.cli import main
from riskdpo.core.errors import UserError
from riskdpo.pairs.records import read_pair_records
from test_convert import SITUATION_1, layout1_rows, layout2_row, write_csv, write_json_rows


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.mark.parametrize("dropped, kept", [("probs_percent", "prizes_display"), ("prizes_display", "probs_percent")])
def test_a_missing_column_is_named_not_reported_as_an_empty_cell(tmp_path, dropped, kept):
    rows = [{k: v for k, v in row.items() if k != dropped} for row in layout1_rows(SITUATION_1)]
    source = write_csv(tmp_path / "rows.csv", rows)
    assert_refused(run("convert", source, "-o", tmp_path / "out.json"), f"missing required column {dropped}", kept)


def cut_in_half(text: str) -> tuple[str, int, int]:
    """`text` cut after a complete value near its middle, and the line and column just past the cut
    (where the parser stops, waiting for more)."""
    cut = text[: text.rindex(",", 0, len(text) // 2)]
    return cut, cut.count("\n") + 1, len(cut.split("\n")[-1]) + 1


def test_a_cut_situations_file_is_reported_with_line_and_column(tmp_path):
    converted = run("convert", write_csv(tmp_path / "rows.csv", [layout2_row(SITUATION_1)]), "-o", tmp_path / "full.json")
    assert converted.exit_code == 0, converted.output
    cut, line, column = cut_in_half((tmp_path / "full.json").read_text(encoding="utf-8"))
    (tmp_path / "situations.json").write_text(cut, encoding="utf-8")
    before = tree_digest(tmp_path)
    assert_refused(run("make-pairs", tmp_path / "situations.json", "-o", tmp_path / "pairs.jsonl"),
                   f"situations.json, line {line}, column {column}", "cut short")
    assert tree_digest(tmp_path) == before


def test_a_cut_row_dump_is_reported_with_line_and_column(tmp_path):
    text = json.dumps(layout1_rows(SITUATION_1), indent=1)
    cut, line, column = cut_in_half(text)
    source = write_json_rows(tmp_path / "rows.json", [])
    source.write_text(cut, encoding="utf-8")
    assert_refused(run("convert", source, "-o", tmp_path / "out.json"), f"rows.json, line {line}, column {column}", "cut short")


def test_a_cut_pairs_line_is_reported_with_line_and_column(tmp_path):
    whole = json.dumps({"prompt": "Which option?", "chosen": "a", "rejected": "b"})
    path = tmp_path / "pairs.jsonl"
    path.write_text(whole + "\n" + whole[:-1] + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"pairs.jsonl, line 2, column {len(whole)}: not JSON \(the text ends early"):
        read_pair_records(path)
    path.write_text(whole + "\n" + whole[:20] + "\n", encoding="utf-8")  # inside a string: the string's start
    with pytest.raises(UserError, match=r"pairs.jsonl, line 2, column 12: not JSON \(the text ends early"):
        read_pair_records(path)


def test_a_json_row_without_a_key_is_named_not_reported_as_an_empty_cell(tmp_path):
    rows = [layout2_row(SITUATION_1), {k: v for k, v in layout2_row(SITUATION_1, situation_id=2).items() if k != "correct_label"}]
    source = write_json_rows(tmp_path / "rows.json", rows)
    assert_refused(run("convert", source, "-o", tmp_path / "out.json"), "rows.json, row 3", "no key correct_label")
    rows[1]["correct_label"] = None  # a key that is there but empty is an empty cell
    write_json_rows(source, rows)
    assert_refused(run("convert", source, "-o", tmp_path / "out.json"), "rows.json, row 3", "correct_label is empty")
