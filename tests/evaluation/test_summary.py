"""The report's pieces against hand counts: option-type rates on a real .xlsx, majority
choices, the position-only chooser, the stratum order and clustered intervals."""

import csv
import json

import openpyxl
import pytest
from click.testing import CliRunner
from test_choices import eval_model, situation  # noqa: F401 (fixtures)

from riskdpo.cli import main
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.generated_sheet import situations_sheet
from riskdpo.data.workbook import write_sheets
from riskdpo.evaluation.stats import cluster_summary, wilson_interval
from riskdpo.evaluation.strata import stratum_order
from riskdpo.evaluation.summary import majority, position_chooser


def typed_workbook(path):
    """Two cooperate-framed sheets (high and low stakes); the low sheet calls its Steal options "Hoard"."""
    sheets = []
    for stakes in ("high", "low"):
        spec = GenerateSpec(situations=8, seed=11, stakes=stakes, framing="cooperate", sheet=f"coop_{stakes}")
        sheet = situations_sheet(spec, generate_situations(spec))
        if stakes == "low":
            column = sheet.columns.index("option_type")
            sheet.rows = [
                (number, (*row[:column], "Hoard" if row[column] == "Steal" else row[column], *row[column + 1:]))
                for number, row in sheet.rows
            ]
        sheets.append(sheet)
    write_sheets(path, sheets)
    return path


def hand_types(workbook):
    """(sheet, situation_id, option_index) -> option_type and (sheet, situation_id) -> stakes, read with openpyxl."""
    types, stakes = {}, {}
    book = openpyxl.load_workbook(workbook, read_only=True)
    for sheet in book.worksheets:
        rows = sheet.iter_rows(values_only=True)
        header = list(next(rows))
        for row in rows:
            values = dict(zip(header, row))
            key = (sheet.title, str(values["situation_id"]))
            types[(*key, int(values["option_index"]))] = values["option_type"]
            stakes[key] = values["stakes"]
    return types, stakes


def test_option_type_rates_equal_hand_counts(tmp_path, eval_model):
    workbook = typed_workbook(tmp_path / "typed.xlsx")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, [
        "eval-choices", "--model", str(eval_model), "--situations", str(workbook), "-o", str(out),
        "--bootstrap", "0", "--no-progress", "--no-chat-template",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    types, stakes = hand_types(workbook)
    with open(out.with_suffix(".csv"), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts, by_stakes = {}, {}
    for row in rows:
        index = list(json.loads(row["logps"])).index(row["choice"])  # logps are in option order
        kind = types[(row["sheet"], row["situation_id"], index)]
        assert row["option_type"] == kind
        counts[kind] = counts.get(kind, 0) + 1
        level = by_stakes.setdefault(stakes[(row["sheet"], row["situation_id"])], {})
        level[kind] = level.get(kind, 0) + 1
    assert len(counts) >= 2  # the tiny model's choices spread over several types
    kinds = json.loads(out.read_text())["models"][0]["option_types"]
    assert kinds["n"] == len(rows) == 16
    assert set(kinds["rates"]) == {"Cooperate", "Hoard", "Rebel", "Steal", "invalid"}
    for name, count in kinds["counts"].items():
        assert count == counts.get(name, 0)
        assert kinds["rates"][name] == count / 16
        assert kinds["intervals"][name] == list(wilson_interval(count, 16))
    assert list(kinds["strata"]["stakes"]) == ["low", "high"]  # rising stakes, not alphabetical
    for level, hand in by_stakes.items():
        assert {k: v for k, v in kinds["strata"]["stakes"][level]["counts"].items() if v} == hand
    assert "option types over 16 answers" in result.output


def test_majority_choice_and_share():
    plain = situation("abc", risk_averse=["b"], risk_neutral=["a"])
    answers = [{"position": 0, "label": label, "category": c} for label, c in
               [("a", "risk_neutral"), ("b", "risk_averse"), (None, "invalid"), ("b", "risk_averse")]]  # fmt: skip
    chosen = majority(plain, answers)
    assert (chosen["label"], chosen["category"], chosen["risk_averse_share"]) == ("b", "risk_averse", 0.5)
    tie = majority(plain, answers[:3])  # a, b, invalid once each: the earliest wins
    assert (tie["label"], tie["risk_averse_share"]) == ("a", pytest.approx(1 / 3))


def test_position_only_chooser_by_hand():
    first = situation("ab", risk_averse=["a"])
    second = situation("abc", risk_averse=["b", "c"])
    third = situation("abc", risk_averse=["c"])
    chooser = position_chooser([first, second, third])
    assert chooser["rates"] == {"1": 1 / 3, "2": 1 / 3, "3": 2 / 3}
    assert (chooser["best_line"], chooser["best"]) == (3, 2 / 3)
    assert chooser["strata"]["num_options"] == {"2": 1.0, "3": 1.0}


def test_stratum_order_is_natural():
    assert sorted(["high", "astronomical", "low", "medium"], key=stratum_order) == ["low", "medium", "high", "astronomical"]
    assert sorted(["10", "2", "b", "a", "Low"], key=stratum_order) == ["Low", "2", "10", "a", "b"]


def test_cluster_summary_pools_answers_and_widens_for_clustering():
    names = ["yes", "no"]
    # answers to one situation mostly agree: 12 situations of information, not 48 answers
    yeses = [0, 4, 4, 0, 4, 3, 0, 4, 0, 1, 4, 0]
    clustered = [["yes"] * k + ["no"] * (4 - k) for k in yeses]
    mixed = [["yes", "yes", "no", "no"]] * 5  # each situation half and half: no between-situation spread
    summary = cluster_summary(clustered, names, 400, seed=1)
    assert summary.n == 48 and summary.counts == {"yes": 24, "no": 24} and summary.rates["yes"] == 0.5
    low, high = summary.intervals["yes"]
    wilson_low, wilson_high = wilson_interval(24, 48)
    assert low <= 0.5 <= high and high - low > wilson_high - wilson_low
    assert cluster_summary(mixed, names, 400, seed=1).intervals["yes"] == [0.5, 0.5]
    assert cluster_summary(clustered, names, 400, seed=1) == summary
    assert cluster_summary(clustered, names, 400, seed=2) != summary
