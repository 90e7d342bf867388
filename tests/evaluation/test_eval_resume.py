"""eval-choices --resume: a run SIGKILLed mid-way continues from its CSV and ends with the
report of an uninterrupted run; a resume with other settings is refused in one line."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import helpers
from test_choices import eval_model, eval_situations  # noqa: F401 (fixtures)
from test_evaluate import comparable

from riskdpo.data.situations import save_situations
from riskdpo.evaluation.evaluate import LOGPROB_CHUNK

SAMPLES = 3
MARK = " [read back]"  # added to an answer on disk before resuming


def command(model, situations, out, *extra):
    return [
        sys.executable, "-m", "riskdpo.cli", "eval-choices", "--model", str(model), "--situations", str(situations),
        "-o", str(out), "--mode", "generate", "--temperature", "1.0", "--top-k", "50", "--samples", str(SAMPLES),
        "--max-new-tokens", "48", "--batch-size", "2", "--bootstrap", "50", "--seed", "5", "--no-progress",
        "--no-chat-template", "--resume", *extra,
    ]  # fmt: skip


def rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path, records):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def test_killed_run_resumes_to_the_uninterrupted_report(tmp_path, eval_model):
    situations = tmp_path / "situations.json"
    save_situations(eval_situations(), situations)
    total = len(eval_situations()) * SAMPLES
    env = {**os.environ, **helpers.SUBPROCESS_ENV}

    whole = tmp_path / "whole" / "report.json"
    done = subprocess.run(command(eval_model, situations, whole), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    check_samples_against_hand_counts(json.loads(whole.read_text()), rows(whole.with_suffix(".csv")), total)

    stopped = tmp_path / "stopped" / "report.json"
    stopped.parent.mkdir()
    checkpoint = stopped.with_suffix(".csv")
    process = subprocess.Popen(command(eval_model, situations, stopped), env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    partial = rows(checkpoint)
    assert 0 < len(partial) < total  # killed mid-way, with whole batches on disk
    assert not stopped.exists()
    # Mark one answer on disk: a resume reads it back, a run that silently started over would
    # write it again as decoded (sampling is seeded per answer, so the rest could not tell).
    marked = (partial[0]["sheet"], partial[0]["situation_id"], partial[0]["sample"])
    partial[0] = {**partial[0], "answer": partial[0]["answer"] + MARK}
    write_rows(checkpoint, partial)

    resumed = subprocess.run(command(eval_model, situations, stopped), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    one, two = json.loads(whole.read_text()), json.loads(stopped.read_text().replace(MARK, ""))  # the report may quote it
    assert comparable(one) == comparable(two)
    final, on_disk = rows(checkpoint), rows(checkpoint)
    (kept,) = [row for row in final if (row["sheet"], row["situation_id"], row["sample"]) == marked]
    assert kept["answer"].endswith(MARK)  # resumed from the rows on disk, not from scratch
    kept["answer"] = kept["answer"].removesuffix(MARK)
    assert rows(whole.with_suffix(".csv")) == final
    assert len(rows(checkpoint)) == total
    assert {(row["situation_id"], row["sample"]) for row in partial} <= {(r["situation_id"], r["sample"]) for r in rows(checkpoint)}

    changed = subprocess.run(
        command(eval_model, situations, stopped)[:-1] + ["--top-k", "40", "--resume"], env=env, capture_output=True, text=True
    )
    assert changed.returncode == 2
    assert changed.stderr.count("\n") == 1 and changed.stderr.startswith("error: --resume:"), changed.stderr
    assert "top_k 50 -> 40" in changed.stderr
    assert rows(checkpoint) == on_disk  # left as it was


def check_samples_against_hand_counts(report, answers, total):
    """Per-situation share and majority, and the report's two kinds of rates, recomputed from the CSV."""
    (model,) = report["models"]
    assert model["samples"] == SAMPLES and model["answers"]["n"] == total == len(answers)
    by_situation = {}
    for row in answers:
        by_situation.setdefault((row["sheet"], row["situation_id"]), []).append(row)
    majority_categories = []
    for group in by_situation.values():
        assert [row["sample"] for row in group] == [str(k) for k in range(SAMPLES)]
        choices = [row["choice"] or "invalid" for row in group]
        top = max(choices.count(choice) for choice in choices)
        majority = next(choice for choice in choices if choices.count(choice) == top)
        share = sum(row["category"] == "risk_averse" for row in group) / SAMPLES
        assert {row["situation_choice"] for row in group} == {majority}
        assert {float(row["situation_risk_averse_share"]) for row in group} == {share}
        majority_categories.append(group[choices.index(majority)]["category"])
    for category, count in model["counts"].items():
        assert count == majority_categories.count(category)
        assert model["answers"]["counts"][category] == sum(row["category"] == category for row in answers)
        low, high = model["answers"]["intervals"][category]
        assert low <= model["answers"]["rates"][category] <= high


def test_logprob_rows_read_back_give_the_same_report(tmp_path, eval_model):
    from click.testing import CliRunner

    from riskdpo.cli import main

    situations = tmp_path / "situations.json"
    save_situations(eval_situations(), situations)
    out = tmp_path / "report.json"
    args = ["eval-choices", "--model", str(eval_model), "--situations", str(situations), "-o", str(out),
            "--bootstrap", "30", "--batch-size", "2", "--no-progress", "--resume"]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    whole, whole_rows = out.read_text(), rows(out.with_suffix(".csv"))
    lines = out.with_suffix(".csv").read_text(encoding="utf-8").splitlines(keepends=True)
    # logprob results reach the CSV a chunk of LOGPROB_CHUNK batches at a time: as if killed after the first
    out.with_suffix(".csv").write_text("".join(lines[: 1 + 2 * LOGPROB_CHUNK]), encoding="utf-8")
    out.unlink()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert out.read_text() == whole and rows(out.with_suffix(".csv")) == whole_rows
