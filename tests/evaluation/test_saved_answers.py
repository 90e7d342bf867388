"""eval-choices --answers: saved answers scored without a model. riskdpo's own generate-mode CSV
(from a real run of tiny models) re-read into the same report; another tool's JSONL/JSON layout read
through field mapping; every refusal one line, exit 2, nothing written."""

import csv
import json

import pytest
from click.testing import CliRunner
from test_choices import eval_model, eval_situations  # noqa: F401 (fixtures)

from riskdpo.cli import main
from riskdpo.data.situations import save_situations
from riskdpo.evaluation.generation import answer_record
from riskdpo.evaluation.saved_answers import parse_answer_fields
from riskdpo.evaluation.summary import csv_row, position_chooser
from riskdpo.models.tiny import build_tiny_model

#: The report fields that name where the choices came from (and prompt_format per model): the scoring
#: precision belongs to a run that loaded models, which a re-read of saved answers does not.
SOURCE_FIELDS = ("config", "precision")


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def read_rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, eval_model):
    """A real generate-mode run of two tiny models, two sampled answers per situation."""
    root = tmp_path_factory.mktemp("saved")
    other = build_tiny_model(root / "other-model", [s.prompt for s in eval_situations()], seed=1)
    save_situations(eval_situations(), root / "situations.json")
    out = root / "generated" / "report.json"
    result = run_cli(
        "eval-choices", "--model", eval_model, "--model", other, "--situations", root / "situations.json", "-o", out,
        "--mode", "generate", "--samples", "2", "--temperature", "1", "--max-new-tokens", "6", "--seed", "3",
        "--bootstrap", "20", "--no-progress", "--no-chat-template", "--batch-size", "8",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root, out


def without_source(report):
    stripped = {key: value for key, value in report.items() if key not in SOURCE_FIELDS}
    stripped["models"] = [{k: v for k, v in model.items() if k != "prompt_format"} for model in report["models"]]
    return stripped


def test_rereading_a_generate_run_reproduces_its_report_csv_and_figure(generated):
    root, out = generated
    again = root / "reread" / "report.json"
    result = run_cli("eval-choices", "--answers", out.with_suffix(".csv"), "--situations", root / "situations.json",
                     "-o", again, "--seed", "3", "--bootstrap", "20")  # fmt: skip
    assert result.exit_code == 0, result.output
    before, after = json.loads(out.read_text()), json.loads(again.read_text())
    assert without_source(after) == without_source(before)
    assert len(before["models"]) == 2 and before["comparisons"] and before["models"][0]["samples"] == 2
    assert after["config"]["answers"] == [str(out.with_suffix(".csv"))]
    assert all(model["prompt_format"]["source"] == "saved answers" for model in after["models"])
    assert again.with_suffix(".csv").read_bytes() == out.with_suffix(".csv").read_bytes()
    assert again.with_suffix(".png").read_bytes() == out.with_suffix(".png").read_bytes()


def test_rereading_reads_the_answer_text_afresh(generated, tmp_path):
    """The answer text is read again (the choice column written then is not trusted)."""
    root, out = generated
    rows = read_rows(out.with_suffix(".csv"))
    first = rows[0]
    assert first["category"] != "risk_averse" or first["truncated"] == "True"
    first["answer"] = f"Answer: {first['risk_averse'].split()[0]}"
    first["truncated"] = "False"
    edited = tmp_path / "edited.csv"
    write_rows(edited, rows)
    before = json.loads(out.read_text())["models"][0]["answers"]["counts"]
    result = run_cli("eval-choices", "--answers", edited, "--situations", root / "situations.json",
                     "-o", tmp_path / "r.json", "--seed", "3", "--bootstrap", "20")  # fmt: skip
    assert result.exit_code == 0, result.output
    after = json.loads((tmp_path / "r.json").read_text())["models"][0]["answers"]["counts"]
    assert after["risk_averse"] == before["risk_averse"] + 1
    row = read_rows(tmp_path / "r.csv")[0]
    assert (row["choice"], row["category"], row["invalid_reason"]) == (first["risk_averse"].split()[0], "risk_averse", "")


def other_tool_records(situations):
    """Answers in another tool's layout: the visible answer, the reasoning apart, a finish reason."""
    records = []
    for number, s in enumerate(situations):
        record = {"question_id": s.situation_id, "subset": s.sheet, "response": f"I choose option {s.risk_averse[0]}.",
                  "reasoning_content": None, "finish_reason": "stop"}  # fmt: skip
        if number == 0:  # everything went into the reasoning, which names a label
            record.update(response="", reasoning_content=f"Safer is {s.risk_averse[0]}. So {s.risk_averse[0]}.")
        if number == 1:  # cut off while reasoning: no answer
            record.update(response=None, reasoning_content="Let me compute the expected value of", finish_reason="length")
        if number == 2:  # cut off in the visible answer after the choice: the choice stands
            record.update(response=f"Answer: {s.risk_averse[0]}. Because", finish_reason="length")
        records.append(record)
    return records


def test_another_tools_jsonl_and_nested_json_read_through_field_mapping(tmp_path):
    situations = eval_situations()
    save_situations(situations, tmp_path / "situations.json")
    averse = tmp_path / "averse.jsonl"
    averse.write_text("".join(json.dumps(r) + "\n" for r in other_tool_records(situations)), encoding="utf-8")
    neutral = tmp_path / "neutral.json"  # OpenAI-style responses, two samples a situation, one of them risk-averse
    neutral.write_text(json.dumps([
        {"id": s.situation_id, "sheet": s.sheet, "n": n,
         "choices": [{"message": {"content": f"({(s.risk_neutral if n == 0 else s.risk_averse)[0]})"}, "finish_reason": "stop"}]}
        for s in situations for n in (0, 1)
    ]), encoding="utf-8")  # fmt: skip
    out = tmp_path / "report.json"
    result = run_cli(
        "eval-choices", "--answers", averse, "--situations", tmp_path / "situations.json", "-o", out,
        "--answer-fields", "id=question_id,text=response,reasoning=reasoning_content,finish=finish_reason,sheet=subset",
        "--bootstrap", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (model,) = json.loads(out.read_text())["models"]
    assert model["model"] == "averse" and model["n"] == 16
    assert model["counts"]["risk_averse"] == 15 and model["invalid_reasons"] == {"truncated": 1}
    rows = read_rows(out.with_suffix(".csv"))
    assert [r["answer_source"] for r in rows[:3]] == ["reasoning", "reasoning", "visible"]
    assert rows[0]["reasoning_chars"] == str(len(other_tool_records(situations)[0]["reasoning_content"]))
    assert [r["truncated"] for r in rows[:4]] == ["False", "True", "True", "False"]
    assert [r["category"] for r in rows[:3]] == ["risk_averse", "invalid", "risk_averse"]

    both = tmp_path / "both.json"
    result = run_cli(
        "eval-choices", "--answers", averse, "--answers", neutral, "--situations", tmp_path / "situations.json",
        "-o", both, "--bootstrap", "0",
        "--answer-fields", "id=question_id,text=response,reasoning=reasoning_content,sheet=subset",
    )  # the same mapping cannot read both layouts
    assert result.exit_code == 2 and "neutral.json record 1: no field 'question_id'" in result.stderr
    spec = "text=choices.0.message.content,finish=choices.0.finish_reason,sample=n,id=id"
    result = run_cli("eval-choices", "--answers", neutral, "--situations", tmp_path / "situations.json",
                     "-o", both, "--bootstrap", "0", "--answer-fields", spec)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(both.read_text())
    (model,) = report["models"]
    assert model["samples"] == 2 and model["answers"]["n"] == 32
    assert model["answers"]["counts"]["risk_averse"] == 16 + sum(s.risk_neutral[0] in s.risk_averse for s in situations)
    assert report["position_chooser"] == json.loads(json.dumps(position_chooser(situations)))


def riskdpo_csv(path, situations, answers, **row):
    """riskdpo's own per-answer CSV, written by the functions generate mode writes it with."""
    rows = []
    for s, text in zip(situations, answers):
        record = {"position": 0, "sample": 0, "skipped": None, **answer_record(s, text, 3, True)}
        rows.append({**csv_row("m", s, record), **row})
    write_rows(path, rows)
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown id", "line 3: situation '99' is not in"),
        ("duplicate", "record 2: a second answer of one to situation '1' sample 0 (the first at"),
        ("duplicate sample", "line 3: a second answer of one to situation '1' sample 1"),
        ("empty file", "no answers in it"),
        ("missing text", "line 2: no field 'answer' (the answer's text); name it with --answer-fields text=FIELD"),
        ("mapped field missing", "line 1: no field 'why' (the answer's reasoning)"),
        ("finish reason", "finish reason 'content_filter' in 'finish_reason' is neither cut"),
        ("logprob csv", "line 2: a log-prob choice, not an answer"),
        ("other labels", "line 2: situation '1' has risk_averse"),
        ("id in two sheets", "situation '1' is in sheets coop, low"),
        ("bad field spec", "--answer-fields 'answer': expected KEY=FIELD"),
        ("model and answers", "give --model (score models) or --answers (read saved answers), not both"),
        ("not json", "line 1, column 2: not JSON"),
        ("not json array", "answers.json, line 1, column 2: not JSON"),
        ("json object", "answers.json: expected a JSON array of answer records, found a JSON dict"),
        ("bad sample", "sample '1.5' in 'sample' is not a whole number"),
    ],
)  # fmt: skip
def test_refusals_exit_2_in_one_line_and_write_nothing(tmp_path, case, message):
    situations = eval_situations()
    plain = [s for s in situations if s.sheet == "low"]
    save_situations(situations if case == "id in two sheets" else plain, tmp_path / "situations.json")
    if case == "id in two sheets":  # the coop sheet numbers its situations from 0 too
        assert {s.situation_id for s in situations if s.sheet == "coop"} & {s.situation_id for s in plain}
    answers, extra = tmp_path / "answers.jsonl", []
    records = [{"situation_id": s.situation_id, "answer": s.risk_averse[0]} for s in plain[:3]]
    if case == "unknown id":
        records[2]["situation_id"] = "99"
    elif case == "duplicate":
        answers = tmp_path / "one.json"
        records[1]["situation_id"] = records[0]["situation_id"]
    elif case == "duplicate sample":
        records = [{**records[0], "sample": 1}, records[1], {**records[0], "sample": "1"}]
        answers = tmp_path / "one.jsonl"
    elif case == "empty file":
        records = []
    elif case == "missing text":
        del records[1]["answer"]
    elif case == "mapped field missing":
        extra = ["--answer-fields", "reasoning=why"]
    elif case == "finish reason":
        records[1]["finish_reason"] = "content_filter"
    elif case == "bad sample":
        records[0]["sample"] = "1.5"
    if case == "logprob csv":
        answers = riskdpo_csv(tmp_path / "lp.csv", plain, ["", ""], logps='{"1": -1.0}', answer="")
    elif case == "other labels":
        answers = riskdpo_csv(tmp_path / "gen.csv", plain, ["a", "b"], risk_averse="zz")
    elif case == "not json":
        answers.write_text("{oops\n", encoding="utf-8")
    elif case == "not json array":
        answers = tmp_path / "answers.json"
        answers.write_text("[oops\n", encoding="utf-8")
    elif case == "json object":
        answers = tmp_path / "answers.json"
        answers.write_text(json.dumps({"answers": records}), encoding="utf-8")
    elif answers.suffix == ".json":
        answers.write_text(json.dumps(records), encoding="utf-8")
    else:
        answers.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if case == "bad field spec":
        extra = ["--answer-fields", "answer"]
    if case == "model and answers":
        extra = ["--model", tmp_path / "some-model"]
    out = tmp_path / "out" / "report.json"
    result = run_cli("eval-choices", "--answers", answers, "--situations", tmp_path / "situations.json", "-o", out, *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_answer_fields_default_and_mapped():
    spec = parse_answer_fields(["id=question_id, text=response", "reasoning="])
    assert (spec.id, spec.text, spec.reasoning, spec.finish) == ("question_id", "response", None, "finish_reason")
    assert spec.explicit == {"id", "text"}


def test_answers_holding_unicode_line_separators_are_one_record_each(tmp_path):
    """Answers whose text holds U+2028, U+2029 or U+0085 (written raw by ensure_ascii=False, as most
    tools write JSONL) are read one record a line, each answer whole."""
    situations = [s for s in eval_situations() if s.sheet == "low"]
    save_situations(situations, tmp_path / "situations.json")
    answers = tmp_path / "answers.jsonl"
    records = [{"situation_id": s.situation_id, "answer": f"Option {s.risk_neutral[0]} pays more on average.{sep}"
                f"I choose option {s.risk_averse[0]}."} for s, sep in zip(situations, "\u2028\u2029\x85" * 9)]  # fmt: skip
    answers.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "report.json"
    result = run_cli("eval-choices", "--answers", answers, "--situations", tmp_path / "situations.json", "-o", out,
                     "--bootstrap", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    (model,) = json.loads(out.read_text())["models"]
    assert model["n"] == len(records) and model["counts"]["risk_averse"] == len(records)
    assert [row["answer"] for row in read_rows(out.with_suffix(".csv"))] == [r["answer"] for r in records]
