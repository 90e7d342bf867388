"""Issue 27, part 5: a lottery whose cells disagree with its prompt line is reported.

A prizes cell of -1e308 behind an option line that shows $21 used to convert with
exit 0 (the label check only notices when a best option changes). Every
disagreement of prizes (and of probabilities written as numbers) with the amounts
the line shows, beyond the sheet's rounding, is now an error (strict) or a skipped
and counted situation (--lenient). Real .xlsx files; the bundled sample and
generated sheets pass with none.
"""

import pytest
from click.testing import CliRunner

from helpers import assert_refused
from riskdpo.cli import main
from riskdpo.data.prompt_agreement import lottery_disagreements, rounding_unit
from riskdpo.data.situations import load_situations
from test_convert import SITUATION_1, SITUATION_2, layout1_rows, write_xlsx

SAMPLE = "data/sample.xlsx"


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def with_cells(situation, index, **cells):
    """The option rows of `situation` with option `index`'s cells replaced (the prompt kept)."""
    rows = layout1_rows(situation)
    rows[index].update(cells)
    return rows


def test_a_prize_of_minus_1e308_behind_a_line_showing_dollars_is_refused(tmp_path):
    # SITUATION_1's option b shows "50% probability of $0, 50% probability of $110"
    rows = with_cells(SITUATION_1, 1, prizes_display="[-1e308, 110.0]", rounding_mode="3sf")
    book = write_xlsx(tmp_path / "book.xlsx", {"train": rows + layout1_rows(SITUATION_2)})
    output = tmp_path / "out.json"
    assert_refused(run("convert", book, "-o", output), "sheet 'train', row 3", "situation 1, option (b)",
                   "outcome 1 shows $0 but prizes_display holds -1e+308")
    assert not output.exists()


def test_every_disagreement_of_the_option_is_named_probabilities_too(tmp_path):
    rows = with_cells(SITUATION_2, 2, prizes_display="[0.0, 1500.0]", probs_percent="[80, 20]")
    book = write_xlsx(tmp_path / "book.xlsx", {"train": layout1_rows(SITUATION_1) + rows})
    assert_refused(run("convert", book, "-o", tmp_path / "out.json"), "situation 2, option 3.",
                   "outcome 1 shows probability 90% but probs_percent holds 80",
                   "outcome 2 shows $150 but prizes_display holds 1500",
                   "outcome 2 shows probability 10% but probs_percent holds 20")


def test_lenient_skips_and_counts_each_situation_that_disagrees(tmp_path):
    rows = (with_cells(SITUATION_1, 0, prizes_display="[-1e308]")
            + with_cells(SITUATION_2, 1, prizes_display="[-20.0, 61.0]"))
    book = write_xlsx(tmp_path / "book.xlsx", {"train": rows + layout1_rows({**SITUATION_1, "id": 9})})
    output = tmp_path / "out.json"
    result = run("convert", book, "-o", output, "--lenient")
    assert result.exit_code == 0, result.output
    assert [s.situation_id for s in load_situations(output)] == ["9"]
    assert "Skipped as bad (lenient): 2" in result.stdout
    assert "outcome 1 shows $50 but prizes_display holds -1e+308" in result.stdout
    assert "outcome 2 shows $60 but prizes_display holds 61" in result.stdout


def test_a_count_of_outcomes_that_differs_is_a_disagreement(tmp_path):
    rows = with_cells(SITUATION_1, 0, prizes_display="[50.0, 0.0]", probs_percent="[100, 0]")
    book = write_xlsx(tmp_path / "book.xlsx", {"train": rows + layout1_rows(SITUATION_2)})
    assert_refused(run("convert", book, "-o", tmp_path / "out.json"),
                   "the prompt line shows 1 outcomes but prizes_display has 2")


def test_rounding_mode_sets_how_far_a_cell_may_sit_from_the_amount_shown():
    line = "probability 0.70 of $6,670, probability 0.30 of $1.24e+45"
    # 3sf: 6,670 stands for [6,665, 6,675]; 5sf would show 6,667 itself
    assert lottery_disagreements(line, [6667.0, 1.2351e45], [70, 30], "3sf") == []
    assert lottery_disagreements(line, [6667.0, 1.2351e45], [70, 30], "5sf") == [
        "outcome 1 shows $6,670 but prizes_display holds 6667", "outcome 2 shows $1.24e+45 but prizes_display holds 1.2351e+45"]
    assert lottery_disagreements(line, [6676.0, 1.24e45], [70, 30], "3sf") == [
        "outcome 1 shows $6,670 but prizes_display holds 6676"]
    assert rounding_unit(21.0, "$21", "3sf") == pytest.approx(0.1)
    assert rounding_unit(21.0, "$21", None) == 1.0  # no rounding_mode: the last digit written
    assert rounding_unit(0.25, "$0.25", "2dp") == pytest.approx(0.01)


def test_verbal_probabilities_are_not_compared_only_their_amounts():
    line = "Likely to give $21, Unlikely to give $10"
    assert lottery_disagreements(line, [21.0, 10.0], [70, 30], "3sf") == []
    assert lottery_disagreements(line, [21.0, 12.0], [70, 30], "3sf") == ["outcome 2 shows $10 but prizes_display holds 12"]


def test_the_bundled_sample_and_generated_sheets_have_no_disagreement(tmp_path):
    result = run("convert", SAMPLE, "-o", tmp_path / "sample.json")
    assert result.exit_code == 0, result.output
    book = tmp_path / "generated.xlsx"
    for number, (stakes, framing, extra) in enumerate(
            [("astronomical", "plain", []), ("medium", "cooperate", ["--keep", "all"]), ("low", "plain", ["--cot"])]):
        append = ["--append"] if number else []
        made = run("generate", "-o", book, *append, "--sheet", f"s{number}", "--stakes", stakes, "--framing", framing,
                   "--situations", 150, "--seed", number, *extra)
        assert made.exit_code == 0, made.output
    result = run("convert", book, "-o", tmp_path / "generated.json")
    assert result.exit_code == 0, result.output
    assert len(load_situations(tmp_path / "generated.json")) == 450
