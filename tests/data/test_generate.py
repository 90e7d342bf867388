"""`riskdpo generate`: real workbooks written through the CLI, read back with openpyxl.

Nothing is taken from the generator's own bookkeeping: labels are recomputed
from the sheet's prizes and percents, and the prompt's option lines are parsed
independently and compared with the numbers in the sheet.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from riskdpo.cli import main
from riskdpo.data.generate import (
    CLOSING_INSTRUCTION,
    LABEL_STYLES,
    STAKES,
    GenerateSpec,
    generate_situations,
    reasoning,
)
from riskdpo.data.generated_sheet import cara_expected_utility_display
from riskdpo.data.labels import find_option_lines, label_style
from riskdpo.pairs.prompting import rewrite_instruction
from riskdpo.data.situations import Option
from riskdpo.data.expected_utility import VERBAL_PROBABILITIES, best_labels, parse_amount

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample.xlsx"
AGENTS = {"CARA": 0.01, "CARA_alpha_0_10": 0.10, "linear": 0.0}
IS_BEST = {"CARA": "is_best_cara_display", "CARA_alpha_0_10": "is_best_cara_alpha_0_10_display", "linear": "is_best_linear_display"}

#: The sheets the module's workbook holds: (sheet, extra CLI arguments).
SHEETS = {
    "low": ["--stakes", "low", "--situations", "160", "--seed", "11"],
    "medium": ["--stakes", "medium", "--situations", "30", "--seed", "12"],
    "high": ["--stakes", "high", "--situations", "30", "--seed", "13"],
    "astro": ["--stakes", "astronomical", "--situations", "40", "--seed", "14", "--include-agreements", "--cot"],
    "coop": ["--framing", "cooperate", "--stakes", "medium", "--situations", "40", "--seed", "15"],
    "diff": ["--keep", "differences", "--situations", "60", "--seed", "16", "--cot"],
}


def run(*args: object):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def read_situations_by_sheet(path: Path) -> dict[str, list[list[dict]]]:
    """{sheet: [rows of situation 1, rows of situation 2, ...]}, rows as column -> value dicts."""
    workbook = load_workbook(path, read_only=True)
    sheets = {}
    for worksheet in workbook.worksheets:
        rows = list(worksheet.iter_rows(values_only=True))
        header = rows[0]
        grouped = defaultdict(list)
        for values in rows[1:]:
            row = dict.fromkeys(header) | dict(zip(header, values))  # trailing empty cells may be left off
            grouped[row["situation_id"]].append(row)
        sheets[worksheet.title] = list(grouped.values())
    workbook.close()
    return sheets


@pytest.fixture(scope="module")
def workbook(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("generate") / "generated.xlsx"
    for number, (sheet, args) in enumerate(SHEETS.items()):
        result = run("generate", "-o", path, "--sheet", sheet, *args, *(["--append"] if number else []))
        assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def sheets(workbook) -> dict[str, list[list[dict]]]:
    return read_situations_by_sheet(workbook)


def all_situations(sheets):
    return [rows for situations in sheets.values() for rows in situations]


_AMOUNT = r"-?\$[\d,]+(?:\.\d+)?(?:e[+-]\d+)?"
_OUTCOME_FORMS = [
    (re.compile(rf"(\d+)% probability of ({_AMOUNT})"), lambda text: int(text)),
    (re.compile(rf"probability (\d\.\d\d) of ({_AMOUNT})"), lambda text: round(float(text) * 100)),
    (
        re.compile(rf"({'|'.join(map(re.escape, VERBAL_PROBABILITIES))}) ({_AMOUNT})"),
        lambda text: VERBAL_PROBABILITIES[text],
    ),
]


def parse_outcomes(line: str) -> tuple[str, list[tuple[int, float]]]:
    """(form, [(percent, prize), ...]) read from one option line of a prompt."""
    for form, (pattern, to_percent) in zip(("percent", "decimal", "verbal"), _OUTCOME_FORMS):
        found = pattern.findall(line)
        if found:
            return form, [(to_percent(probability), parse_amount(amount)) for probability, amount in found]
    raise AssertionError(f"no outcomes in {line!r}")


def test_labels_equal_a_recomputation_from_the_sheets_prizes_and_percents(sheets):
    for rows in all_situations(sheets):
        lotteries = []
        for row in rows:
            percents = ast.literal_eval(row["probs_percent"])
            prizes = ast.literal_eval(row["prizes_display"])
            assert sum(percents) == 100 and all(p > 0 for p in percents)
            assert len(prizes) == len(percents) == row["num_outcomes"]
            lotteries.append((row["option_index"], prizes, [p / 100 for p in percents]))
        assert len(rows) == rows[0]["num_options"] and [row["option_index"] for row in rows] == list(range(len(rows)))
        correct_union = json.loads(rows[0]["CARA_correct_labels"]) + json.loads(rows[0]["CARA_incorrect_labels"])
        labels = [label for _, label in find_option_lines(rows[0]["prompt_text"])]
        assert sorted(correct_union) == sorted(labels)
        by_index = [(labels[index], prizes, probs) for index, prizes, probs in lotteries]
        for prefix, alpha in AGENTS.items():
            best = best_labels(by_index, alpha)
            assert len(best) == 1, "ties must be drawn again"
            for row, label in zip(rows, labels):
                assert json.loads(row[f"{prefix}_correct_labels"]) == best
                assert json.loads(row[f"{prefix}_incorrect_labels"]) == [x for x in labels if x not in best]
                assert row[IS_BEST[prefix]] is (True if label in best else None)


def test_expected_value_columns_are_three_significant_figures(sheets):
    for rows in sheets["medium"]:
        for row in rows:
            prizes = ast.literal_eval(row["prizes_display"])
            percents = ast.literal_eval(row["probs_percent"])
            expected = sum(p / 100 * x for p, x in zip(percents, prizes))
            assert row["EU_linear_display_3sf"] == pytest.approx(float(f"{expected:.2e}"), rel=1e-12, abs=1e-12)
            utility = 1 - sum(p / 100 * math.exp(-0.01 * x) for p, x in zip(percents, prizes))
            assert float(row["EU_cara_display_3sf"]) == pytest.approx(float(f"{utility:.2e}"), rel=1e-9)


def test_cara_expected_utility_of_huge_losses_is_written_as_text_without_overflow():
    option = Option("a", (-1e94, 5.0), (0.5, 0.5))
    shown = cara_expected_utility_display(option, 0.01)
    # EU ~ -0.5 exp(1e92): log10 = 1e92 / ln 10 + log10(0.5)
    exponent = 1e92 / math.log(10) + math.log10(0.5)
    assert isinstance(shown, str) and shown.startswith("-")
    mantissa, power = shown[1:].split("e+")
    assert int(power) == math.floor(exponent)
    assert float(mantissa) == pytest.approx(10 ** (exponent - math.floor(exponent)), rel=0.1)


def test_prompts_show_exactly_the_sheets_lotteries(sheets):
    for rows in all_situations(sheets):
        prompt = rows[0]["prompt_text"]
        assert all(row["prompt_text"] == prompt for row in rows)
        lines = prompt.split("\n")
        found = find_option_lines(prompt)
        assert len(found) == rows[0]["num_options"]
        assert lines[-1].endswith(CLOSING_INSTRUCTION) and "?" in lines[-1]
        assert "$" not in lines[0] and "$" not in lines[-1]
        option_lines = lines[1:-1]
        assert len(option_lines) == len(found)
        for row, line, (written, _canonical) in zip(rows, option_lines, found):
            assert line.startswith(written + " ")
            assert label_style(written) == rows[0]["label_style"]
            form, outcomes = parse_outcomes(line)
            assert form == rows[0]["probability_format"]
            assert (form == "verbal") is rows[0]["use_verbal_probs"]
            assert [percent for percent, _ in outcomes] == ast.literal_eval(row["probs_percent"])
            assert [prize for _, prize in outcomes] == ast.literal_eval(row["prizes_display"])
            if form == "verbal":
                assert all(percent % 5 == 0 for percent, _ in outcomes)


def test_every_label_style_probability_form_and_stakes_level_appears(sheets):
    situations = all_situations(sheets)
    assert {rows[0]["label_style"] for rows in situations} == set(LABEL_STYLES)
    assert {rows[0]["probability_format"] for rows in situations} == {"percent", "decimal", "verbal"}
    assert {rows[0]["stakes"] for rows in situations} == set(STAKES)
    assert {len(rows) for rows in sheets["low"]} == {2, 3, 4, 5}
    assert {row["num_outcomes"] for rows in sheets["low"] for row in rows} == {1, 2, 3, 4, 5}


def test_prize_magnitudes_follow_the_stakes(sheets):
    def prizes(sheet):
        return [abs(x) for rows in sheets[sheet] for row in rows for x in ast.literal_eval(row["prizes_display"])]

    assert max(prizes("low")) <= 100 and max(prizes("low")) > 50
    assert 1_000 < max(prizes("medium")) <= 10_000
    assert 10_000 < max(prizes("high")) <= 500_000
    assert max(prizes("astro")) > 1e60
    assert any(re.search(r"\$\d\.\d\de\+\d\d", rows[0]["prompt_text"]) for rows in sheets["astro"])


def test_disagreements_only_unless_asked(sheets):
    def agrees(rows):
        return bool(set(json.loads(rows[0]["CARA_correct_labels"])) & set(json.loads(rows[0]["linear_correct_labels"])))

    for sheet in ("low", "medium", "high", "coop"):
        assert not any(agrees(rows) for rows in sheets[sheet])
        assert {rows[0]["low_bucket_label"] for rows in sheets[sheet]} <= {"lin_only", "both"}
    assert any(agrees(rows) for rows in sheets["astro"])
    # --keep differences adds situations where only the alpha = 0.10 best differs
    buckets = [rows[0]["low_bucket_label"] for rows in sheets["diff"]]
    assert {"lin_only", "both", "010_only"} <= set(buckets)
    for rows in sheets["diff"]:
        averse = set(json.loads(rows[0]["CARA_correct_labels"]))
        linear_differs = not averse & set(json.loads(rows[0]["linear_correct_labels"]))
        timid_differs = not averse & set(json.loads(rows[0]["CARA_alpha_0_10_correct_labels"]))
        expected = {(True, True): "both", (True, False): "lin_only", (False, True): "010_only"}
        assert rows[0]["low_bucket_label"] == expected[(linear_differs, timid_differs)]


def test_cooperate_framing_types_each_option_and_names_the_cooperative_one(sheets):
    for rows in sheets["coop"]:
        types = [row["option_type"] for row in rows]
        assert types.count("Cooperate") == 1 and set(types) <= {"Cooperate", "Steal", "Rebel"} and len(set(types)) == len(types)
        labels = [label for _, label in find_option_lines(rows[0]["prompt_text"])]
        cooperative = labels[types.index("Cooperate")]
        assert json.loads(rows[0]["cooperate_correct_labels"]) == [cooperative]
        assert json.loads(rows[0]["cooperate_incorrect_labels"]) == [x for x in labels if x != cooperative]
        line = rows[0]["prompt_text"].split("\n")[1 + types.index("Cooperate")]
        assert "Cooperate" in line
    assert "cooperate_correct_labels" not in sheets["low"][0][0]


def test_cot_answers_end_in_the_agents_best_label(sheets):
    for sheet in ("astro", "diff"):
        for rows in sheets[sheet]:
            first = rows[0]
            assert first["chosen_full"].endswith(f"Answer: {json.loads(first['CARA_correct_labels'])[0]}")
            rejected_agent = {"lin_only": "linear", "both": "linear", "010_only": "CARA_alpha_0_10", None: None}[
                first["low_bucket_label"]
            ]
            if rejected_agent is None:
                assert first["rejected_full"] is None
            else:
                best = json.loads(first[f"{rejected_agent}_correct_labels"])[0]
                assert first["rejected_full"].endswith(f"Answer: {best}")
            assert first["chosen_full"].count("Option ") == first["num_options"]


def test_reasoning_writes_expected_values_and_certainty_equivalents():
    options = [Option("a", (100.0, 0.0), (0.5, 0.5)), Option("b", (45.0,), (1.0,))]
    neutral = reasoning(options, 0.0)
    assert "0.50 * $100 + 0.50 * $0 = $50.00" in neutral and neutral.endswith("Answer: a")
    averse = reasoning(options, 0.01)
    # CE of a at alpha 0.01: -ln(0.5 e^-1 + 0.5) / 0.01 = 37.99...
    assert "certainty equivalent $37.99" in averse and averse.endswith("Answer: b")


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    paths = []
    for name, seed in (("one", 3), ("two", 3), ("three", 4)):
        paths.append(tmp_path / f"{name}.xlsx")
        assert run("generate", "-o", paths[-1], "--situations", 25, "--seed", seed, "--cot").exit_code == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), stakes=st.sampled_from(sorted(STAKES)), framing=st.sampled_from(["plain", "cooperate"]))
def test_any_generated_prompt_parses_to_its_options(seed, stakes, framing):
    (situation,) = generate_situations(GenerateSpec(situations=1, seed=seed, stakes=stakes, framing=framing))
    assert find_option_lines(situation.prompt) == list(zip(situation.labels_as_written, situation.option_labels))
    rewritten = rewrite_instruction(situation.prompt, "Output the label of your chosen option only.")
    assert CLOSING_INSTRUCTION not in rewritten
    assert rewritten.endswith("? Output the label of your chosen option only.")


def test_user_errors_exit_2_with_one_line_and_no_output(tmp_path):
    bad_suffix = run("generate", "-o", tmp_path / "out.csv", "--situations", 3)
    assert bad_suffix.exit_code == 2 and bad_suffix.stderr.count("\n") == 1 and ".xlsx" in bad_suffix.stderr
    assert not (tmp_path / "out.csv").exists()
    too_few = run("generate", "-o", tmp_path / "none.xlsx", "--situations", 0)
    assert too_few.exit_code == 2 and too_few.stderr.count("\n") == 1 and not (tmp_path / "none.xlsx").exists()
    assert "situations 0: at least one situation is needed" in too_few.stderr

    book = tmp_path / "book.xlsx"
    assert run("generate", "-o", book, "--sheet", "train", "--situations", 3).exit_code == 0
    before = book.read_bytes()
    for sheet in ("train", "TRAIN", "bad/name"):
        again = run("generate", "-o", book, "--append", "--sheet", sheet, "--situations", 3)
        assert again.exit_code == 2 and again.stderr.startswith("error: ") and again.stderr.count("\n") == 1
    assert book.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.xlsx"]


def test_append_keeps_earlier_sheets_cell_for_cell(tmp_path):
    book = tmp_path / "book.xlsx"
    assert run("generate", "-o", book, "--sheet", "first", "--situations", 8, "--cot").exit_code == 0
    first = read_situations_by_sheet(book)
    assert run("generate", "-o", book, "--append", "--sheet", "second", "--situations", 5, "--seed", 9).exit_code == 0
    both = read_situations_by_sheet(book)
    assert list(both) == ["first", "second"] and both["first"] == first["first"]
    # without --append the file is replaced
    assert run("generate", "-o", book, "--sheet", "only", "--situations", 2).exit_code == 0
    assert list(read_situations_by_sheet(book)) == ["only"]


def _sheet_values(path: Path) -> dict[str, list[tuple]]:
    workbook = load_workbook(path, read_only=True)
    values = {ws.title: list(ws.iter_rows(values_only=True)) for ws in workbook.worksheets}
    workbook.close()
    return values


def test_sample_workbook_has_the_documented_sheets_and_regenerates_from_the_readme(tmp_path):
    commands = [line for line in (REPO / "data" / "README.md").read_text().splitlines() if line.startswith("riskdpo generate")]
    expected_sheets = ["train", "train_cot", "test_low", "test_medium", "test_high", "test_astronomical", "test_cooperate"]
    committed = _sheet_values(SAMPLE)
    assert list(committed) == expected_sheets
    regenerated = tmp_path / "sample.xlsx"
    for command in commands:
        args = [str(regenerated) if arg == "data/sample.xlsx" else arg for arg in shlex.split(command)[1:]]
        assert run(*args).exit_code == 0
    assert _sheet_values(regenerated) == committed
    situations = {title: {row[0] for row in rows[1:]} for title, rows in committed.items()}
    assert {title: len(ids) for title, ids in situations.items()} == {
        "train": 240, "train_cot": 40, "test_low": 60, "test_medium": 60,
        "test_high": 60, "test_astronomical": 60, "test_cooperate": 60,
    }  # fmt: skip
    header = committed["train_cot"][0]
    assert "chosen_full" in header and "cooperate_correct_labels" in committed["test_cooperate"][0]
