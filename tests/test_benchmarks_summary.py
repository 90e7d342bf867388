"""BENCHMARKS.md's current-figures table is the one the committed results files make.

The table at the top of BENCHMARKS.md is written by `benchmarks/run.py` from
`benchmarks/results/*.json` (benchmarks/summary.py). These tests fail when a
results file changes and nobody reran `python benchmarks/run.py --summary-only`,
when someone edits the table by hand, and when a document quotes a speed ratio
("15.8×") that the table does not hold: a stale figure, or one never measured.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"
#: Documents whose speed ratios must be current figures; add any page that states riskdpo's speed.
DOCUMENTS_QUOTING_SPEED = ("README.md",)


def load_summary():
    """benchmarks/summary.py, imported with its folder on the path (it imports harness from there)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("benchmarks_summary", BENCH / "summary.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


summary = load_summary()


def committed_block() -> str:
    return summary.current_block((REPO / "BENCHMARKS.md").read_text(encoding="utf-8"))


def test_benchmarks_md_opens_with_the_table_the_results_files_make():
    made = summary.summary_markdown(summary.summary_rows(RESULTS))
    assert committed_block() == made, (
        "BENCHMARKS.md's current figures differ from benchmarks/results/*.json: "
        "run `python benchmarks/run.py --summary-only`"
    )
    assert (REPO / "BENCHMARKS.md").read_text(encoding="utf-8").startswith(f"# Benchmarks\n\n{summary.BEGIN}\n")


@pytest.mark.parametrize("name", DOCUMENTS_QUOTING_SPEED)
def test_every_speed_ratio_a_document_quotes_is_a_current_figure(name):
    text = (REPO / name).read_text(encoding="utf-8")
    assert summary.ratios_not_in(text, committed_block()) == [], (
        f"{name} quotes speed ratios that BENCHMARKS.md's current figures do not hold"
    )


def test_a_stale_or_unmeasured_ratio_is_caught_and_products_are_not_ratios():
    block = committed_block()
    text = (
        "Evaluation is 15.8× (logprob) and 6.24x (generate) the one-at-a-time loop, against a target of 15×; "
        "in November it was 10.1×, and a GPU gives 40× (hoped). A batch of 4 × 512 tokens, 0x1F."
    )
    assert summary.quoted_ratios(text) == ["15.8", "6.24", "15", "10.1", "40"]
    assert summary.ratios_not_in(text, block) == ["10.1", "40"]


def test_a_new_measurement_makes_the_check_fail_until_run_py_rewrites_the_table(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results, ignore=shutil.ignore_patterns("*.md"))
    record = json.loads((results / "eval.json").read_text(encoding="utf-8"))
    logprob = next(target for target in record["targets"] if target["name"].startswith("logprob"))
    logprob["measured"] = 16.34
    record["date"] = "2027-01-05T10:00:00+00:00"
    (results / "eval.json").write_text(json.dumps(record), encoding="utf-8")
    document = tmp_path / "BENCHMARKS.md"
    shutil.copy(REPO / "BENCHMARKS.md", document)

    made = summary.summary_markdown(summary.summary_rows(results))
    assert summary.current_block(document.read_text(encoding="utf-8")) != made  # the test above would fail
    assert "| 16.3× |" in made and "| 2027-01-05 |" in made

    command = [sys.executable, str(BENCH / "run.py"), "--summary-only", "--out", str(results), "--document", str(document)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    rewritten = document.read_text(encoding="utf-8")
    assert summary.current_block(rewritten) == made
    before = (REPO / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert rewritten.replace(made.rstrip("\n"), "") == before.replace(committed_block().rstrip("\n"), "")
    assert summary.ratios_not_in("logprob is now 16.3× the loop", summary.current_block(rewritten)) == []
    assert (results / "BENCHMARKS.md").read_text(encoding="utf-8").count(made) == 1


def test_run_py_refuses_a_document_without_the_table_markers(tmp_path):
    document = tmp_path / "BENCHMARKS.md"
    document.write_text("# Benchmarks\n\nNo table here.\n", encoding="utf-8")
    out = tmp_path / "results"
    shutil.copytree(RESULTS, out)
    command = [sys.executable, str(BENCH / "run.py"), "--summary-only", "--out", str(out), "--document", str(document)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1
    assert [line for line in done.stderr.splitlines() if line] == [
        f"{document}: no summary block ({summary.BEGIN} … {summary.END}) in the document"
    ]
    assert document.read_text(encoding="utf-8") == "# Benchmarks\n\nNo table here.\n"
