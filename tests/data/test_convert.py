"""`riskdpo convert`: real .xlsx/.csv/.json files in both layouts, through the library and the CLI."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from riskdpo.cli import main
from riskdpo.data.convert import read_situations, summarize
from riskdpo.data.lotteries import prompt_lottery
from riskdpo.data.situations import load_situations

REPO = Path(__file__).resolve().parents[2]

# Hand-checked situations (prizes, percents per option) with each agent's best option:
#  1: a = $50 sure; b = 50% $0 / 50% $110 (EV 55, CE_0.01 = 40.6)      -> RA a, RN b, TRA a
#  2: 1 = $10 sure; 2 = 50% -$20 / 50% $60 (EV 20, CE_0.01 = 12.2, CE_0.1 = -13.1);
#     3 = 90% $0 / 10% $150 (EV 15, CE_0.01 = 8.1, CE_0.1 = 1.1)       -> RA 2, RN 2, TRA 1
#  3: astronomical: a = nothing; b = 50% -$6.4322e+93 / 50% $1e94    -> RA a, RN b, TRA a
SITUATION_1 = {"id": 1, "labels": ["(a)", "(b)"], "options": [([50.0], [100]), ([0.0, 110.0], [50, 50])],
               "risk_averse": ["a"], "risk_neutral": ["b"], "too_risk_averse": ["a"]}
SITUATION_2 = {"id": 2, "labels": ["1.", "2.", "3."],
               "options": [([10.0], [100]), ([-20.0, 60.0], [50, 50]), ([-0.0, 150.0], [90, 10])],
               "risk_averse": ["2"], "risk_neutral": ["2"], "too_risk_averse": ["1"]}
SITUATION_3 = {"id": 3, "labels": ["a.", "b."], "options": [([0.0], [100]), ([-6.4322e93, 1e94], [50, 50])],
               "risk_averse": ["a"], "risk_neutral": ["b"], "too_risk_averse": ["a"]}


def money(amount):
    return f"-${abs(amount):,.10g}" if str(amount).startswith("-") else f"${amount:,.10g}"


def prompt_for(situation):
    lines = [f"{written} " + ", ".join(f"{p}% probability of {money(x)}" for x, p in zip(*option))
             for written, option in zip(situation["labels"], situation["options"])]
    return "\n".join(["You are offered a choice between lotteries.", *lines, "Which option do you choose?"])


def canonical(situation):
    return [written.strip("().") for written in situation["labels"]]


def layout1_rows(situation, **overrides):
    """Option rows of one situation, as a generated layout-1 sheet holds them."""
    rows = []
    for index, (label, (prizes, percents)) in enumerate(zip(canonical(situation), situation["options"])):
        rows.append({
            "situation_id": situation["id"], "option_index": index, "num_options": len(situation["options"]),
            "option_type": "Cooperate" if index == 0 else "Steal", "prompt_text": prompt_for(situation),
            "prizes_display": str(prizes), "probs_percent": str(percents),
            "is_best_cara_display": "TRUE" if label in situation["risk_averse"] else "",
            "is_best_linear_display": True if label in situation["risk_neutral"] else None,
            "CARA_correct_labels": json.dumps(situation["risk_averse"]),
            "linear_correct_labels": json.dumps(situation["risk_neutral"]),
            "CARA_alpha_0_10_correct_labels": json.dumps(situation["too_risk_averse"]),
            "low_bucket_label": "both", "use_verbal_probs": "FALSE", "my_extra_column": f"note {situation['id']}",
            **overrides,
        })
    return rows


def layout2_row(situation, correct=None, incorrect=None, **extra):
    return {"situation_id": situation["id"], "prompt_text": prompt_for(situation),
            "correct_label": correct if correct is not None else situation["risk_averse"][0],
            "incorrect_label": incorrect if incorrect is not None else situation["risk_neutral"][0],
            "bad_correct_answers": json.dumps([situation["risk_averse"][0].upper(), "Answer: " + situation["risk_averse"][0]]),
            "bad_incorrect_answers": "B, (b), b.", **extra}


def columns_of(rows):
    return list(dict.fromkeys(key for row in rows for key in row))


def write_xlsx(path, sheets):
    """A real workbook: {sheet name: list of row dicts} (an empty list makes an empty sheet)."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        if rows:
            columns = columns_of(rows)
            sheet.append(columns)
            for row in rows:
                sheet.append([row.get(column) for column in columns])
    workbook.save(path)
    return path


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns_of(rows))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json_rows(path, rows):
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def by_id(situations):
    return {situation.situation_id: situation for situation in situations}


@pytest.fixture
def layout1_xlsx(tmp_path):
    rows = layout1_rows(SITUATION_1, cooperate_correct_labels='["a"]') + layout1_rows(SITUATION_2) + layout1_rows(SITUATION_3)
    rows[0]["chosen_full"] = "Option a is safer... so (a)"
    return write_xlsx(tmp_path / "book.xlsx", {"train": rows})


# ---------------------------------------------------------------- layout 1


def test_layout1_xlsx_converts_through_the_cli(layout1_xlsx, tmp_path):
    output = tmp_path / "situations.json"
    result = run(layout1_xlsx, "-o", output)
    assert result.exit_code == 0, result.output
    situations = by_id(load_situations(output))
    assert sorted(situations) == ["1", "2", "3"]
    first, second = situations["1"], situations["2"]
    assert first.sheet == "train" and first.prompt == prompt_for(SITUATION_1)
    assert first.option_labels == ["a", "b"] and first.labels_as_written == ["(a)", "(b)"]
    assert second.option_labels == ["1", "2", "3"] and second.labels_as_written == ["1.", "2.", "3."]
    assert [option.prizes for option in second.options] == [(10.0,), (-20.0, 60.0), (-0.0, 150.0)]
    assert [option.probs for option in second.options] == [(1.0,), (0.5, 0.5), (0.9, 0.1)]
    assert [option.type for option in first.options] == ["Cooperate", "Steal"]
    for key, expected in (("1", SITUATION_1), ("2", SITUATION_2), ("3", SITUATION_3)):
        for field in ("risk_averse", "risk_neutral", "too_risk_averse"):
            assert getattr(situations[key], field) == expected[field]
    assert first.cooperate == ["a"] and second.cooperate == []
    assert first.meta["my_extra_column"] == "note 1" and first.meta["low_bucket_label"] == "both"
    assert first.meta["chosen_full"].endswith("(a)") and first.meta["use_verbal_probs"] is False
    assert "prizes_display" not in first.meta and "CARA_correct_labels" not in first.meta
    assert "(b)" in first.answer_variants["b"] and "B" in first.answer_variants["b"]
    assert "sheet 'train': 3 situations" in result.stdout
    assert "Disagreements (risk-averse and risk-neutral best options differ): 2 of 3" in result.stdout
    assert "Label mismatches, sheet vs recomputed (warnings): 0" in result.stdout


def test_is_best_flags_stand_in_for_missing_label_columns(tmp_path):
    rows = layout1_rows(SITUATION_1) + layout1_rows(SITUATION_2)
    for row in rows:
        del row["CARA_correct_labels"], row["linear_correct_labels"], row["CARA_alpha_0_10_correct_labels"]
    path = write_csv(tmp_path / "flags.csv", rows)
    situations = by_id(read_situations(path, verify=False).situations)
    assert situations["1"].risk_averse == ["a"] and situations["1"].risk_neutral == ["b"]
    assert situations["2"].risk_averse == ["2"] and situations["2"].risk_neutral == ["2"]
    assert situations["2"].too_risk_averse == []  # no column and no verification to fill it
    filled = by_id(read_situations(path).situations)
    assert filled["2"].too_risk_averse == ["1"]  # recomputed from the lotteries


def test_csv_and_json_dumps_match_the_workbook(layout1_xlsx, tmp_path):
    rows = layout1_rows(SITUATION_1, cooperate_correct_labels='["a"]') + layout1_rows(SITUATION_2) + layout1_rows(SITUATION_3)
    rows[0]["chosen_full"] = "Option a is safer... so (a)"
    csv_path = write_csv(tmp_path / "dump.csv", rows)
    json_path = write_json_rows(tmp_path / "rows.json", rows)
    output = tmp_path / "all.json"
    result = CliRunner().invoke(main, ["convert", "--input", str(csv_path), str(json_path), "--output", str(output)])
    assert result.exit_code == 0, result.output
    situations = load_situations(output)
    assert [(s.sheet, s.situation_id) for s in situations] == [(sheet, sid) for sheet in ("rows", "dump") for sid in "123"]
    reference = read_situations(layout1_xlsx).situations

    def comparable(situation):
        data = situation.to_json()
        data.pop("sheet")
        data["meta"].pop("use_verbal_probs")
        data["meta"].pop("num_options")  # a number in the workbook, text in a csv
        return data

    for converted in (situations[:3], situations[3:]):
        assert [comparable(s) for s in converted] == [comparable(s) for s in reference]


def test_rows_of_a_situation_may_come_in_any_order(tmp_path):
    rows = layout1_rows(SITUATION_2)
    shuffled = [rows[2], layout1_rows(SITUATION_1)[0], rows[0], layout1_rows(SITUATION_1)[1], rows[1]]
    situations = by_id(read_situations(write_csv(tmp_path / "mixed.csv", shuffled)).situations)
    assert [option.prizes for option in situations["2"].options] == [(10.0,), (-20.0, 60.0), (-0.0, 150.0)]


def test_amount_text_and_rounded_percents_parse(tmp_path):
    situation = {**SITUATION_1, "options": [([50.0], [100]), ([0.0, 110.0], [50, 49])]}
    rows = layout1_rows(situation)
    rows[0]["prizes_display"] = "['$50']"
    rows[1]["prizes_display"] = "['-0.0', '$110']"
    converted = read_situations(write_csv(tmp_path / "amounts.csv", rows)).situations[0]
    assert converted.options[0].prizes == (50.0,)
    assert converted.options[1].probs == pytest.approx((50 / 99, 49 / 99))


def test_verification_reports_a_wrong_label_as_a_warning(tmp_path):
    rows = layout1_rows(SITUATION_1, CARA_correct_labels='["b"]') + layout1_rows(SITUATION_2)
    path = write_xlsx(tmp_path / "wrong.xlsx", {"train": rows})
    output = tmp_path / "out.json"
    result = run(path, "-o", output, "--strict")
    assert result.exit_code == 0, result.output
    assert "Label mismatches, sheet vs recomputed (warnings): 1" in result.stdout
    assert "row 2: situation 1: risk_averse is ['b'] in the sheet but ['a'] recomputed (alpha 0.01)" in result.stdout
    assert by_id(load_situations(output))["1"].risk_averse == ["b"]  # reported, never silently changed
    quiet = run(path, "-o", output, "--no-verify")
    assert quiet.exit_code == 0 and "mismatch" not in quiet.stdout and "Verification: off" in quiet.stdout


# ---------------------------------------------------------------- layout 2 and sheets


def test_layout2_repairs_negative_indices_from_labels_vector(tmp_path):
    rows = [
        layout2_row(SITUATION_2, correct=-2, incorrect="-2", labels_vector="['1.', '2.', '3.']"),
        layout2_row(SITUATION_1, correct="-1", labels_vector="['(a)', '(b)']"),
        layout2_row(SITUATION_3),
    ]
    path = write_xlsx(tmp_path / "old.xlsx", {"Sheet1": rows})
    result = read_situations(path)
    situations = by_id(result.situations)
    assert situations["2"].risk_averse == ["2"] and situations["2"].risk_neutral == ["2"]
    assert situations["1"].risk_averse == ["a"]  # -1 is the FIRST entry, not Python's last
    assert len(result.repairs) == 3
    assert "sheet 'Sheet1', row 3: situation 1: correct_label -1 repaired to 'a'" in str(result.repairs[2])
    assert "Label repairs: 3" in summarize(result)
    assert situations["1"].answer_variants["a"][-1] == "Answer: a"  # the sheet's variants for the correct label
    assert "B" in situations["1"].answer_variants["b"]


def test_layout2_reads_lotteries_from_the_prompt_and_fills_too_risk_averse(tmp_path):
    path = write_csv(tmp_path / "old.csv", [layout2_row(SITUATION_2), layout2_row(SITUATION_3)])
    situations = by_id(read_situations(path).situations)
    assert situations["2"].too_risk_averse == ["1"]
    assert situations["3"].options[1].prizes == (-6.4322e93, 1e94)


def test_label_10_stays_10(tmp_path):
    prizes = [[float(10 * n)] for n in range(1, 11)]
    situation = {"id": 9, "labels": [f"{n}." for n in range(1, 11)], "options": [(p, [100]) for p in prizes],
                 "risk_averse": ["10"], "risk_neutral": ["10"], "too_risk_averse": ["10"]}
    rows = [layout2_row(situation, correct=10, incorrect=10.0)]
    for path in (write_xlsx(tmp_path / "ten.xlsx", {"s": rows}), write_json_rows(tmp_path / "ten.json", rows)):
        converted = read_situations(path).situations[0]
        assert converted.risk_averse == ["10"] and converted.risk_neutral == ["10"]
        assert converted.option_labels[-1] == "10" and not read_situations(path).mismatches


def test_sheets_are_chosen_and_a_notes_sheet_is_skipped(tmp_path):
    path = write_xlsx(tmp_path / "book.xlsx", {
        "notes": [{"Notes": "generated 2024-05-01"}],
        "train": layout1_rows(SITUATION_1),
        "test": [layout2_row(SITUATION_2)],
        "blank": [],
    })
    output = tmp_path / "out.json"
    result = run(path, "-o", output)
    assert result.exit_code == 0, result.output
    assert [(s.sheet, s.situation_id) for s in load_situations(output)] == [("train", "1"), ("test", "2")]
    assert "sheet 'notes': skipped: holds no situations" in result.stdout
    assert "sheet 'blank': skipped: the sheet is empty" in result.stdout
    only = run(path, "--sheet", "test", "-o", output)
    assert only.exit_code == 0 and [s.sheet for s in load_situations(output)] == ["test"]
    assert [s.sheet for s in read_situations(path, sheet="train").situations] == ["train"]


def test_several_workbooks_sharing_a_sheet_name_stay_apart(tmp_path):
    first = write_xlsx(tmp_path / "one.xlsx", {"train": layout1_rows(SITUATION_1)})
    second = write_xlsx(tmp_path / "two.xlsx", {"train": layout1_rows(SITUATION_1)})
    situations = read_situations([first, second]).situations
    assert [s.sheet for s in situations] == ["one/train", "two/train"]


def test_sample_layout2_csv_converts_with_repairs(tmp_path):
    output = tmp_path / "sample.json"
    result = run(REPO / "data" / "sample_layout2.csv", "-o", output)
    assert result.exit_code == 0, result.output
    situations = load_situations(output)
    assert len(situations) >= 10 and all(s.is_disagreement for s in situations)
    assert "Label repairs: 0" not in result.stdout and "repaired to" in result.stdout
    assert "Label mismatches, sheet vs recomputed (warnings): 0" in result.stdout
    assert f"Verified against the lotteries: {len(situations)} of {len(situations)} situations" in result.stdout
    assert len({tuple(s.labels_as_written[0:1]) for s in situations}) >= 6  # many label styles


def test_prompt_lottery_reads_all_three_probability_forms():
    assert prompt_lottery("82% probability of $749, 18% probability of -$2,430") == ((749.0, -2430.0), (0.82, 0.18))
    assert prompt_lottery("probability 0.25 of $6.75e+17, probability 0.75 of $0") == ((6.75e17, 0.0), (0.25, 0.75))
    assert prompt_lottery("Highly unlikely to give $10, Highly likely to give -$92") == ((10.0, -92.0), (0.1, 0.9))
    assert prompt_lottery("82% probability of $749") is None  # does not sum to 100


# ---------------------------------------------------------------- bad input


def _bad_cases(tmp_path):
    """(name, input path, extra args, text the one-line message must contain)."""
    def xlsx(name, rows, sheet="train"):
        return write_xlsx(tmp_path / f"{name}.xlsx", {sheet: rows})

    no_index = [{k: v for k, v in row.items() if k != "option_index"} for row in layout1_rows(SITUATION_1)]
    duplicate = layout1_rows(SITUATION_1) + [{}] + layout1_rows(SITUATION_2)  # a blank row 4 in between
    duplicate[4]["option_index"] = 0
    bad_percents = layout1_rows(SITUATION_1)
    bad_percents[1]["probs_percent"] = "[50, 48]"
    garbage = tmp_path / "garbage.xlsx"
    garbage.write_bytes(b"this is not a zip file")
    text = tmp_path / "situations.txt"
    text.write_text("hello")
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("")
    return [
        ("wrong type", text, [], "unsupported file type '.txt'"),
        ("unreadable", garbage, [], "garbage.xlsx: not a readable .xlsx workbook"),
        ("empty csv", empty_csv, [], "empty.csv: the file is empty"),
        ("empty sheet", write_xlsx(tmp_path / "blank.xlsx", {"train": layout1_rows(SITUATION_1), "blank": []}),
         ["--sheet", "blank"], "sheet 'blank': the sheet is empty"),
        ("no such sheet", xlsx("nosheet", layout1_rows(SITUATION_1)), ["--sheet", "test"], "no sheet named 'test' (sheets: train)"),
        ("missing column", xlsx("nocol", no_index), [], "sheet 'train': missing required column option_index"),
        ("duplicate", xlsx("dup", duplicate), [], "sheet 'train', row 6: duplicate option row: situation_id 2 option_index 0 is also on row 5"),
        ("probabilities", xlsx("probs", bad_percents), [], "row 3: prizes_display/probs_percent: probabilities [50.0, 48.0] sum to 98%"),
        ("prizes", xlsx("prizes", layout1_rows(SITUATION_1, prizes_display="[abc, 5]")), [], "row 2: prizes_display holds a non-numeric value"),
        ("label", xlsx("label", [layout2_row(SITUATION_1), layout2_row(SITUATION_2, correct="d")]), [],
         "row 3: correct_label 'd' is not an option of the prompt (1, 2, 3)"),
        ("label set", xlsx("set", layout1_rows(SITUATION_1, linear_correct_labels='["z"]')), [],
         "row 2: linear_correct_labels names 'z', which is not an option of the prompt (a, b)"),
        ("negative index", xlsx("neg", [layout2_row(SITUATION_1, correct=-3, labels_vector="['(a)', '(b)']")]), [],
         "correct_label '-3' is not an option of the prompt (a, b), and labels_vector cannot repair it"),
    ]


def test_every_bad_input_is_one_line_exit_2_and_no_output(tmp_path):
    for name, path, args, expected in _bad_cases(tmp_path):
        output = tmp_path / f"{name.replace(' ', '_')}.json"
        result = run(path, "-o", output, *args)
        assert result.exit_code == 2, (name, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (name, lines)
        assert "Traceback" not in result.output
        assert not output.exists(), name
        assert not list(tmp_path.glob(f".{output.name}*")), name  # no temporary file left either


def test_missing_column_lists_the_columns_the_sheet_has(tmp_path):
    rows = [{k: v for k, v in row.items() if k != "correct_label"} for row in [layout2_row(SITUATION_1)]]
    result = run(write_csv(tmp_path / "old.csv", rows), "-o", tmp_path / "out.json")
    assert result.exit_code == 2
    assert "missing required column correct_label" in result.stderr
    assert "the sheet has columns: situation_id, prompt_text, incorrect_label, bad_correct_answers" in result.stderr


def test_lenient_skips_bad_situations_and_lists_why(tmp_path):
    rows = (layout1_rows(SITUATION_1, probs_percent="[50, 40]") + layout1_rows(SITUATION_2)  # 1 prize, 2 percents
            + layout1_rows(SITUATION_3, prizes_display="[oops]"))
    path = write_xlsx(tmp_path / "mixed.xlsx", {"train": rows})
    output = tmp_path / "out.json"
    assert run(path, "-o", output).exit_code == 2 and not output.exists()
    result = run(path, "-o", output, "--lenient")
    assert result.exit_code == 0, result.output
    assert [s.situation_id for s in load_situations(output)] == ["2"]
    assert "Skipped as bad (lenient): 2" in result.stdout
    assert "sheet 'train', row 2: prizes_display/probs_percent" in result.stdout
    assert "sheet 'train', row 7: prizes_display holds a non-numeric value" in result.stdout


def test_no_input_is_a_user_error(tmp_path):
    result = run("-o", tmp_path / "out.json")
    assert result.exit_code == 2 and "error: no input file given" in result.stderr
