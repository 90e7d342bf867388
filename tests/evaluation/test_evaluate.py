"""eval-choices end to end with real tiny models: report, CSV, figure, prompt formats,
skips, bad inputs, determinism and a two-process (gloo) run equal to a single-process one."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import helpers
import pytest
from click.testing import CliRunner
from test_choices import digit_model, eval_model, eval_situations, loaded, situation, word_tokenizer  # noqa: F401 (fixtures)

from riskdpo.cli import main
from riskdpo.core.errors import UserError
from riskdpo.evaluation.evaluate import (
    SKIP_INDISTINCT,
    SKIP_NO_RISK_AVERSE,
    EvalOptions,
    FormatOverrides,
    ModelFormat,
    model_format,
    score_model,
    select_situations,
)
from riskdpo.evaluation.strata import stratum_values
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.generated_sheet import situations_sheet
from riskdpo.pairs.prompting import PromptFormat
from riskdpo.data.situations import save_situations
from riskdpo.models.tiny import build_tiny_model
from riskdpo.data.workbook import write_sheets

CATEGORIES = ["risk_averse", "risk_neutral", "too_risk_averse", "other", "invalid"]
RUN_FORMAT = {"chat_template": False, "system": None, "instruction": "Output the label of your chosen option only."}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, eval_model):
    """A trained-looking run directory (run.json + final-model), a second model, and situations.json."""
    root = tmp_path_factory.mktemp("eval")
    run = root / "run"
    shutil.copytree(eval_model, run / "final-model")
    (run / "run.json").write_text(json.dumps({"prompt_format": RUN_FORMAT, "response": "label"}), encoding="utf-8")
    other = build_tiny_model(root / "other-model", [s.prompt for s in eval_situations()], seed=1)
    situations = eval_situations()
    situations[0].risk_averse = []  # cannot be scored: skipped and counted
    save_situations(situations, root / "situations.json")
    return {"root": root, "trained": run / "final-model", "other": other, "situations": root / "situations.json"}


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_workbook(path, *specs):
    """A real .xlsx (openpyxl) with one layout-1 sheet of generated situations per spec."""
    write_sheets(path, [situations_sheet(spec, generate_situations(spec)) for spec in specs])
    return path


def csv_rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def logprob_run(workspace):
    out = workspace["root"] / "logprob" / "report.json"
    result = run_cli(
        "eval-choices", "--model", workspace["trained"], "--model", workspace["other"],
        "--situations", workspace["situations"], "-o", out, "--bootstrap", "100", "--no-progress", "--batch-size", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result


def test_report_contract_and_files(logprob_run, workspace):
    out, result = logprob_run
    report = json.loads(out.read_text())
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["situations"]["total"] == 16
    assert report["situations"]["skipped"] == {SKIP_NO_RISK_AVERSE: 1}
    assert [m["model"] for m in report["models"]] == [str(workspace["trained"]), str(workspace["other"])]
    for model in report["models"]:
        assert model["n"] == 15
        assert sum(model["counts"].values()) == 15
        assert model["unequal_label_tokens"] == 0 and model["invalid_reasons"] == {}
        assert sum(model["rates"].values()) == pytest.approx(1.0)
        for category in CATEGORIES:
            low, high = model["intervals"][category]
            assert low <= model["rates"][category] <= high
        assert 0 < model["mean_risk_averse_prob"] < 1
        assert model["cooperate"]["n"] == 6
        assert (model["alpha"]["estimate"] is None) == (model["alpha"]["interval"] is None)
        for stratum in ("sheet", "stakes", "num_options", "probabilities", "label_style"):
            assert sum(group["n"] for group in model["strata"][stratum].values()) == 15
        assert set(model["strata"]["stakes"]) == {"low", "high"}
    assert report["config"]["batch_size"] == 4 and report["config"]["mode"] == "logprob"
    assert str(workspace["trained"]) in result.output and "vs" in result.output


def test_prompt_format_comes_from_run_json(logprob_run, workspace):
    out, _ = logprob_run
    trained, other = json.loads(out.read_text())["models"]
    assert trained["prompt_format"]["source"] == str(workspace["trained"].parent / "run.json")
    assert trained["prompt_format"]["instruction"] == RUN_FORMAT["instruction"]
    assert trained["prompt_format"]["chat_template"] is False
    assert other["prompt_format"]["source"] == "defaults" and other["prompt_format"]["instruction"] is None


def test_csv_rows_and_comparison_agree_with_a_hand_count(logprob_run, workspace):
    out, _ = logprob_run
    report = json.loads(out.read_text())
    rows = csv_rows(out.with_suffix(".csv"))
    assert len(rows) == 2 * 15
    by_model = {}
    for row in rows:
        assert row["category"] in CATEGORIES
        logps = json.loads(row["logps"])
        assert row["choice"] == max(logps, key=logps.get)
        by_model.setdefault(row["model"], {})[(row["sheet"], row["situation_id"])] = row["category"] == "risk_averse"
    for model in report["models"]:
        assert sum(by_model[model["model"]].values()) == model["counts"]["risk_averse"]
    a, b = (by_model[str(workspace["trained"])], by_model[str(workspace["other"])])
    a_only = sum(a[key] and not b[key] for key in a)
    b_only = sum(b[key] and not a[key] for key in a)
    (comparison,) = report["comparisons"]
    assert comparison["risk_averse_diff"] == pytest.approx((b_only - a_only) / 15)
    low, high = comparison["interval"]
    assert low <= comparison["risk_averse_diff"] <= high
    smaller, discordant = min(a_only, b_only), a_only + b_only
    tail = sum(math.comb(discordant, k) for k in range(smaller + 1)) / 2**discordant if discordant else 0.5
    assert comparison["p_value"] == pytest.approx(min(1.0, 2 * tail))


def test_same_seed_gives_identical_files(workspace, tmp_path):
    outputs = []
    for name in ("first", "second"):
        out = tmp_path / name / "report.json"
        result = run_cli(
            "eval-choices", "--model", workspace["other"], "--situations", workspace["situations"], "-o", out,
            "--sample", "9", "--seed", "3", "--bootstrap", "50", "--no-progress",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs.append(out)
    first, second = outputs
    report = json.loads(first.read_text())
    assert report["models"][0]["n"] == 9
    assert first.read_text().replace("first", "second") == second.read_text()
    assert first.with_suffix(".csv").read_bytes() == second.with_suffix(".csv").read_bytes()


def test_config_file_supplies_options_and_is_recorded(workspace, tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(f"model: [{workspace['other']}]\nsample: 4\nbatch-size: 2\nbootstrap: 10\nresponse: as-written\n")
    out = tmp_path / "report.json"
    result = run_cli(
        "eval-choices", "--config", config, "--situations", workspace["situations"], "-o", out,
        "--sample", "5", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["config"]["batch_size"] == 2 and report["config"]["sample"] == 5  # the command line wins
    assert report["config"]["model"] == [str(workspace["other"])]
    (model,) = report["models"]
    assert model["n"] == 5 and model["alpha"]["bootstrap"] == 10
    assert model["prompt_format"]["response"] == "as-written"


def test_generate_mode_reads_answers(workspace, tmp_path):
    out = tmp_path / "report.json"
    result = run_cli(
        "eval-choices", "--model", workspace["other"], "--situations", workspace["situations"], "-o", out,
        "--mode", "generate", "--max-new-tokens", "4", "--bootstrap", "20", "--no-progress", "--no-chat-template",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (model,) = json.loads(out.read_text())["models"]
    rows = csv_rows(out.with_suffix(".csv"))
    assert sum(model["rates"].values()) == pytest.approx(1.0)
    assert model["mean_risk_averse_prob"] is None
    assert model["counts"]["invalid"] == sum(row["category"] == "invalid" for row in rows)
    assert all(row["answer"] for row in rows)
    assert all(row["answer_source"] == "visible" and row["reasoning_chars"] == "0" for row in rows)
    assert all((row["invalid_reason"] != "") == (row["category"] == "invalid") for row in rows)
    assert sum(model["invalid_reasons"].values()) == model["counts"]["invalid"]
    assert model["counts"]["invalid"] > 0  # a random model's 4-token answers: the table says why they are invalid
    assert all(f"{reason} {count}" in result.output for reason, count in model["invalid_reasons"].items())
    assert model["prompt_format"]["chat_template"] is False


def test_spreadsheet_input_with_sheet_choice(workspace, tmp_path):
    workbook = write_workbook(
        tmp_path / "held_out.xlsx",
        GenerateSpec(situations=5, seed=9, stakes="medium", sheet="medium"),
        GenerateSpec(situations=3, sheet="other"),
    )
    out = tmp_path / "report.json"
    result = run_cli(
        "eval-choices", "--model", workspace["other"], "--situations", workbook, "--sheet", "medium", "-o", out,
        "--bootstrap", "20", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (model,) = json.loads(out.read_text())["models"]
    assert model["n"] == 5
    assert set(model["strata"]["sheet"]) == {"medium"}


def test_sheet_picks_situations_of_a_situations_json(workspace, tmp_path):
    out = tmp_path / "report.json"
    result = run_cli(
        "eval-choices", "--model", workspace["other"], "--situations", workspace["situations"], "--sheet", "coop",
        "-o", out, "--bootstrap", "0", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (model,) = json.loads(out.read_text())["models"]
    assert model["n"] == 6 and set(model["strata"]["sheet"]) == {"coop"}
    assert model["alpha"]["bootstrap_interval"] is None and model["alpha"]["estimate"] is not None
    low, high = model["alpha"]["interval"]  # the profile-likelihood interval needs no resampling
    assert low <= model["alpha"]["estimate"] <= high


#: What each refusal must say (a fragment of its one line).
REFUSALS = {
    "missing situations": "nowhere.json: no such file",
    "report not json": "report.csv: the report must be a .json file",
    "no tokenizer": "weights-only: the model directory has no tokenizer files",
    "batch size zero": "--batch-size 0: must be at least 1",
    "no risk-averse labels": "no situation has risk-averse labels",
    "unknown sheet": "book.xlsx: no sheet named 'nope'",
    "unknown mode": "--mode vibes: choose logprob or generate",
    "unknown response style": "--response cot: choose label or as-written",
    "greedy samples": "--samples 3: needs --mode generate and a --temperature above 0",
    "top-p zero": "--top-p 0.0: must be above 0",
    "names short": "--name given 2 times for 1 --model",
    "resume without settings": "report.csv has no report.resume.json beside it",
}


@pytest.mark.parametrize(
    "case",
    [
        "missing situations", "report not json", "no tokenizer", "batch size zero", "no risk-averse labels",
        "unknown sheet", "unknown mode", "unknown response style", "greedy samples", "top-p zero", "names short",
        "resume without settings",
    ],  # fmt: skip
)
def test_bad_inputs_exit_2_in_one_line(workspace, tmp_path, case):
    out = tmp_path / "out" / "report.json"
    model, situations, extra = workspace["other"], workspace["situations"], []
    if case == "missing situations":
        situations = tmp_path / "nowhere.json"
    elif case == "report not json":
        out = tmp_path / "out" / "report.csv"
    elif case == "no tokenizer":
        model = tmp_path / "weights-only"
        model.mkdir()
        for name in ("config.json", "model.safetensors"):
            shutil.copy(workspace["other"] / name, model / name)
    elif case == "batch size zero":
        extra = ["--batch-size", "0"]
    elif case == "unknown mode":
        extra = ["--mode", "vibes"]
    elif case == "unknown response style":
        extra = ["--response", "cot"]
    elif case == "greedy samples":
        extra = ["--mode", "generate", "--samples", "3"]
    elif case == "top-p zero":
        extra = ["--mode", "generate", "--temperature", "1", "--top-p", "0"]
    elif case == "names short":
        extra = ["--name", "a", "--name", "b"]
    elif case == "resume without settings":
        out.parent.mkdir()
        out.with_suffix(".csv").write_text("model,sheet,situation_id\n", encoding="utf-8")
        extra = ["--resume"]
    elif case == "no risk-averse labels":
        situations = tmp_path / "unlabelled.json"
        unlabelled = eval_situations()[:2]
        for item in unlabelled:
            item.risk_averse = []
        save_situations(unlabelled, situations)
    elif case == "unknown sheet":
        extra = ["--sheet", "nope"]
        situations = write_workbook(tmp_path / "book.xlsx", GenerateSpec(situations=2, sheet="medium"))
    result = run_cli("eval-choices", "--model", model, "--situations", situations, "-o", out, "--no-progress", *extra)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert REFUSALS[case] in lines[0], (case, lines[0])  # which error, not only that one came
    left = ["report.csv"] if case == "resume without settings" else []  # the user's own file, untouched
    assert not out.parent.exists() or sorted(path.name for path in out.parent.iterdir()) == left


def test_model_format_precedence(tmp_path):
    run = tmp_path / "run"
    (run / "final-model").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"prompt_format": RUN_FORMAT, "response": "as-written"}))
    stored = model_format(str(run / "final-model"), FormatOverrides())
    trained_format = PromptFormat(False, None, RUN_FORMAT["instruction"])
    assert stored == ModelFormat(trained_format, "as-written", str(run / "run.json"), "as-written")
    explicit = FormatOverrides(chat_template=True, system="Be careful.", response="label")
    overridden = model_format(str(run / "final-model"), explicit)
    assert overridden.prompt == PromptFormat(True, "Be careful.", RUN_FORMAT["instruction"])
    assert overridden.response == "label"
    (run / "run.json").write_text(json.dumps({"prompt_format": RUN_FORMAT, "response": "cot"}))
    cot = model_format(str(run), FormatOverrides())  # run.json inside the directory itself
    assert cot.response == "label" and cot.trained_response == "cot"
    assert model_format(str(tmp_path / "plain"), FormatOverrides()) == ModelFormat(PromptFormat(), "label", "defaults")


def test_select_situations_skips_and_samples():
    situations = eval_situations()
    situations[2].risk_averse = []
    kept, selection = select_situations(situations)
    assert len(kept) == 15 and selection["skipped"] == {SKIP_NO_RISK_AVERSE: 1}
    sample, _ = select_situations(situations, sample=5, seed=1)
    assert sample == select_situations(situations, sample=5, seed=1)[0]
    assert [situations.index(s) for s in sample] == sorted(situations.index(s) for s in sample)
    with pytest.raises(UserError):
        select_situations(situations[2:3])


def test_stratum_values():
    plain = situation("abc", ["a"])
    plain.meta = {"stakes": "high", "use_verbal_probs": "TRUE"}
    assert stratum_values(plain) == {
        "sheet": "s", "num_options": "3", "label_style": "(a)", "stakes": "high", "probabilities": "verbal"
    }  # fmt: skip
    plain.meta = {"use_verbal_probs": False}
    assert stratum_values(plain)["probabilities"] == "numeric" and "stakes" not in stratum_values(plain)


def test_situations_with_indistinct_labels_are_skipped(loaded):
    model, _ = loaded
    fmt = ModelFormat(PromptFormat(chat_template=False), "label", "defaults")
    situations = [situation("ab", ["a"]), situation("abcd", ["b"]), situation("ab", ["b"], ["a"])]
    records = score_model(model, word_tokenizer(), situations, fmt, EvalOptions(batch_size=2))
    assert [record["skipped"] for record in records] == [None, SKIP_INDISTINCT, None]
    assert records[2]["category"] in ("risk_averse", "risk_neutral")


def test_the_report_counts_situations_whose_labels_differ_in_token_count(digit_model):
    """Labels 1-12 split into digits take one or two tokens: such situations are counted, also when their
    rows are read back from the CSV (a resumed run). Records once lost their token counts in a merge."""
    from riskdpo.evaluation.resume import row_record
    from riskdpo.evaluation.summary import build_report, csv_row

    model, tokenizer = digit_model
    fmt = ModelFormat(PromptFormat(chat_template=False), "label", "defaults")
    twelve = [situation([str(n) for n in range(1, 13)], ["11"]) for _ in range(3)]
    for number, item in enumerate(twelve):
        item.situation_id = f"twelve-{number}"
    situations = eval_situations()[:4] + twelve
    records = score_model(model, tokenizer, situations, fmt, EvalOptions(batch_size=4))
    assert records[-1]["label_tokens"]["10"] == 2 and records[-1]["label_tokens"]["9"] == 1

    def count(records):
        report = build_report(["m"], ["m"], [fmt], situations, [records], mode="logprob", bootstrap=0, seed=0,
                              selection={"total": 7, "skipped": {}, "sample": None, "selected": 7}, config={}).report
        return report["models"][0]["unequal_label_tokens"]

    assert count(records) == 3
    read_back = [row_record(csv_row("m", situations[r["position"]], r), r["position"]) for r in records]
    assert count(read_back) == 3


def assert_same(one, two, where="report"):
    """Equal structure and values; floats equal up to batching round-off (shards batch differently)."""
    if isinstance(one, dict):
        assert one.keys() == two.keys(), where
        for key in one:
            assert_same(one[key], two[key], f"{where}.{key}")
    elif isinstance(one, list):
        assert len(one) == len(two), where
        for index, (a, b) in enumerate(zip(one, two)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(one, float):
        assert two == pytest.approx(one, rel=1e-5, abs=1e-9), where
    else:
        assert one == two, where


def comparable(report):
    """The report without what legitimately differs between runs: the output path and process count."""
    report = dict(report, processes=None)
    report["config"] = dict(report["config"], output=None)
    return report


def test_two_process_run_equals_single_process(workspace, tmp_path):
    single = tmp_path / "single" / "report.json"
    sharded = tmp_path / "sharded" / "report.json"
    common = [
        "--model", workspace["trained"], "--situations", workspace["situations"],
        "--bootstrap", "50", "--no-progress", "--batch-size", "3",
    ]  # fmt: skip
    assert run_cli("eval-choices", *common, "-o", single).exit_code == 0
    # on a machine without GPUs, --multi_gpu starts gloo processes (accelerate's multi-CPU mode)
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "riskdpo.cli", "eval-choices", *map(str, common), "-o", str(sharded),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = json.loads(single.read_text()), json.loads(sharded.read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    assert_same(comparable(one), comparable(two))
    assert csv_rows(single.with_suffix(".csv"))[0].keys() == csv_rows(sharded.with_suffix(".csv"))[0].keys()
    single_rows, sharded_rows = csv_rows(single.with_suffix(".csv")), csv_rows(sharded.with_suffix(".csv"))
    assert [row["choice"] for row in single_rows] == [row["choice"] for row in sharded_rows]


def test_no_progress_silences_the_weight_loading_bars_too(workspace, tmp_path):
    args = ["eval-choices", "--model", str(workspace["other"]), "--situations", str(workspace["situations"]),
            "--bootstrap", "0", "--sample", "2"]
    shown = helpers.run_cli(*args, "-o", str(tmp_path / "shown.json"))
    quiet = helpers.run_cli(*args, "-o", str(tmp_path / "quiet.json"), "--no-progress")
    assert shown.returncode == 0 and quiet.returncode == 0, quiet.stderr[-2000:]
    assert "Loading weights" in shown.stderr  # transformers draws its bar unless told not to
    assert "Loading weights" not in quiet.stderr and "it/s" not in quiet.stderr
