"""Class 7 of issue 12, inconsistent rows: the option rows of one situation
must agree on every column that describes the whole situation (the prompt, the
label sets, num_options, ...). A disagreement is never resolved by taking the
first row: strict names the rows, lenient skips the situation and counts it.
"""

import json

import pytest
from click.testing import CliRunner

from helpers import assert_refused
from riskdpo.cli import main
from riskdpo.data.situations import load_situations
from test_convert import SITUATION_1, SITUATION_2, layout1_rows, write_xlsx


def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def disagreeing(column, value):
    """SITUATION_1's rows with `column` of its second option row (sheet row 3) set to `value`, then SITUATION_2."""
    rows = layout1_rows(SITUATION_1)
    rows[1][column] = value
    return rows + layout1_rows(SITUATION_2)


CASES = [
    ("prompt_text", lambda row: row["prompt_text"].replace("lotteries", "gambles"), "prompt_text differs from its row 2"),
    ("CARA_correct_labels", lambda row: json.dumps(["b"]), "CARA_correct_labels differs from its row 2"),
    ("linear_correct_labels", lambda row: json.dumps(["a"]), "linear_correct_labels differs from its row 2"),
    ("low_bucket_label", lambda row: "lin_only", "low_bucket_label differs from its row 2"),
    ("num_options", lambda row: 3, "num_options differs from its row 2"),
]


@pytest.mark.parametrize("column, change, message", CASES, ids=[case[0] for case in CASES])
def test_rows_that_disagree_are_refused_strict_with_both_rows(tmp_path, column, change, message):
    rows = layout1_rows(SITUATION_1)
    book = write_xlsx(tmp_path / "book.xlsx", {"train": disagreeing(column, change(rows[1]))})
    output = tmp_path / "out.json"
    assert_refused(run(book, "-o", output), "sheet 'train', row 3", "situation 1", message)
    assert not output.exists()


@pytest.mark.parametrize("column, change, message", CASES, ids=[case[0] for case in CASES])
def test_rows_that_disagree_are_skipped_and_counted_lenient(tmp_path, column, change, message):
    rows = layout1_rows(SITUATION_1)
    book = write_xlsx(tmp_path / "book.xlsx", {"train": disagreeing(column, change(rows[1]))})
    output = tmp_path / "out.json"
    result = run(book, "-o", output, "--lenient")
    assert result.exit_code == 0, result.output
    assert [s.situation_id for s in load_situations(output)] == ["2"]  # never situation 1 with its first row's values
    assert "Skipped as bad (lenient): 1" in result.stdout and message in result.stdout


def test_num_options_that_disagrees_with_the_option_rows_is_refused(tmp_path):
    book = write_xlsx(tmp_path / "book.xlsx", {"train": layout1_rows(SITUATION_1, num_options=3) + layout1_rows(SITUATION_2)})
    assert_refused(run(book, "-o", tmp_path / "out.json"), "row 2", "num_options is 3 but it has 2 option rows")
    lenient = run(book, "-o", tmp_path / "out.json", "--lenient")
    assert lenient.exit_code == 0 and [s.situation_id for s in load_situations(tmp_path / "out.json")] == ["2"]


def test_spellings_of_one_value_are_not_disagreements(tmp_path):
    """2 and 2.0, and text with other outer spaces, are the same cell; per-option columns may differ freely."""
    rows = layout1_rows(SITUATION_1, num_options=2)
    rows[1]["num_options"] = 2.0
    rows[1]["prompt_text"] = rows[1]["prompt_text"] + "  "
    rows[1]["my_extra_column"] = "another note"  # meta: the first row's value is kept, as documented
    book = write_xlsx(tmp_path / "book.xlsx", {"train": rows})
    result = run(book, "-o", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert load_situations(tmp_path / "out.json")[0].risk_averse == SITUATION_1["risk_averse"]

