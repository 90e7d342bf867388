"""Smoke run of the benchmark harness (benchmarks/run.py --smoke) and its baseline's answer parser.

The harness runs for real at tiny sizes: riskdpo's commands, riskdpo train
against TRL's DPOTrainer and eval-choices against the one-at-a-time baseline,
each in its own process, on the tiny phi model. The tests check that every
section writes well-formed markdown tables with their command, machine and
date, that the JSON holds the same tables, and that every time, rate and
memory figure is a positive number. They do not check speed: timings on a
shared CI machine mean nothing at these sizes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"

#: Columns holding a time, a rate or a memory size: every value must be a positive number.
POSITIVE_COLUMN = re.compile(r"(/s|\bs|MiB|ms|per token|/situation)$")
ROW = re.compile(r"^\|.*\|$")


def load_baseline_eval():
    spec = importlib.util.spec_from_file_location("baseline_eval", BENCH / "baseline_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One input cache for both runs, so the sample's pairs and the tiny model are built once."""
    return tmp_path_factory.mktemp("bench-work")


def run_harness(sections: str, out: Path, work: Path) -> None:
    command = [sys.executable, str(BENCH / "run.py"), "--smoke", "--only", sections, "--out", str(out), "--work", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each markdown table as rows of cells (header, separator, data rows)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if ROW.match(line):
            current.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif current:
            tables.append(current)
            current = []
    return tables


def check_section(out: Path, section: str, sections: str) -> dict:
    """The section's markdown and JSON are complete and agree; returns the JSON."""
    markdown = (out / f"{section}.md").read_text(encoding="utf-8")
    record = json.loads((out / f"{section}.json").read_text(encoding="utf-8"))
    assert f"- Command: `python benchmarks/run.py --smoke --only {sections} " in markdown
    assert re.search(r"^- Machine: .+ cores, .+ GiB RAM; Python .+ torch ", markdown, re.MULTILINE)
    assert re.search(r"^- Date: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", markdown, re.MULTILINE)
    assert re.search(r"^- Load average \(1 min\) before / after: \d+\.\d\d / \d+\.\d\d$", markdown, re.MULTILINE)
    assert record["command"].startswith("python benchmarks/run.py --smoke")
    assert record["machine"]["torch"] and record["machine"]["usable_cores"] >= 1

    tables = markdown_tables(markdown)
    assert len(tables) == len(record["tables"]) >= 1
    for rows, data in zip(tables, record["tables"]):
        header, separator, *body = rows
        assert f"### {data['title']}" in markdown
        assert header == data["columns"]
        assert separator == ["---"] * len(header)
        assert len(body) == len(data["rows"]) >= 1
        assert all(len(row) == len(header) for row in body)
        for column, name in enumerate(header):
            if POSITIVE_COLUMN.search(name):
                values = [row[column] for row in data["rows"]]
                assert all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values), (data["title"], name, values)
    for target in record["targets"]:
        assert target["measured"] is not None and math.isfinite(target["measured"])
        mark = "met" if target["met"] else "NOT MET"
        assert f"- **{mark}**: {target['name']}" in markdown
    return record


def column(record: dict, table: int, name: str) -> list:
    data = record["tables"][table]
    index = data["columns"].index(name)
    return [row[index] for row in data["rows"]]


def test_train_and_eval_sections_write_well_formed_tables(tmp_path, work):
    run_harness("train,eval", tmp_path, work)
    train = check_section(tmp_path, "train", "train,eval")
    # both trainers optimise the same objective from the same start: loss ln 2 at step 1
    assert column(train, 0, "Trainer") == column(train, 1, "Trainer") == ["TRL DPOTrainer", "riskdpo train"]
    assert column(train, 1, "Loss step 1") == pytest.approx([math.log(2)] * 2, abs=1e-3)
    trl_tokens, riskdpo_tokens = column(train, 0, "Model tokens/pair")
    assert trl_tokens > riskdpo_tokens  # TRL runs the prompt twice, riskdpo once

    evaluation = check_section(tmp_path, "eval", "train,eval")
    assert column(evaluation, 0, "Situations") == [6, 6, 6]
    for name in ("Same choice, one reader", "Same choice, each its reader"):
        assert all(0 <= rate <= 1 for rate in column(evaluation, 1, name))
    generate_text, _ = column(evaluation, 1, "Same answer text")
    generate_one_reader, _ = column(evaluation, 1, "Same choice, one reader")
    assert generate_text == 1.0 and generate_one_reader == 1.0  # greedy batched text is the one-at-a-time text
    written = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert written.count("\n## ") == 3 and "\n## Current figures\n" in written  # the summary, then train and eval


def test_data_and_growth_sections_write_well_formed_tables(tmp_path, work):
    run_harness("data,growth", tmp_path, work)
    data = check_section(tmp_path, "data", "data,growth")
    assert column(data, 0, "Output") == ["60 situations", "60 pairs"]
    growth = check_section(tmp_path, "growth", "data,growth")
    assert column(growth, 0, "Situations") == [30, 60]
    assert [table["title"].split(":")[0] for table in growth["tables"]] == ["Growth"] * 4


@pytest.mark.parametrize(
    "answer, labels, expected",
    [
        ("b", "abc", "b"),
        ("B", "abc", "b"),
        ("(b)", "abc", "b"),
        ("b.", "abc", "b"),
        ("(c).", "abc", "c"),
        ("**a**", "abc", "a"),
        ("Option b", "abc", "b"),
        ("option (c)", "abc", "c"),
        ("The answer is (b).", "abc", "b"),
        ("Answer: c", "abc", "c"),
        ("I would choose option a.", "abc", "a"),
        ("I choose c because it is safer.", "abc", "c"),
        ("b. It has the highest certainty equivalent.", "abc", "b"),
        ("2", ["1", "2", "3"], "2"),
        ("(3).", ["1", "2", "3"], "3"),
        ("10", ["1", "2", "10"], "10"),
        ("I pick option 10", ["1", "2", "10"], "10"),
        ("d", "abc", None),
        ("I don't know", "abc", None),
        ("", "abc", None),
    ],
)
def test_baseline_parser_reads_the_usual_answer_forms(answer, labels, expected):
    assert load_baseline_eval().parse_choice(answer, list(labels)) == expected


def test_mfu_counts_the_head_only_where_it_runs(tmp_path):
    """N_b + N_h + the input embedding = every parameter; the head's FLOPs scale with its own positions."""
    from transformers import PhiConfig, PhiForCausalLM

    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_train", BENCH / "bench_train.py")
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    config = PhiConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    model = PhiForCausalLM(config)
    model.save_pretrained(tmp_path)
    head, blocks = bench_train.head_and_block_parameters(tmp_path)
    assert head == 300 * 32 + 300  # phi-2's head has a bias
    assert head + blocks + 300 * 32 == sum(p.numel() for p in model.parameters())
    everywhere = bench_train.mfu(blocks, head, 1000.0, 1000.0, 1e12)
    assert everywhere == pytest.approx(6 * (head + blocks) * 1000.0 / 1e12)
    assert bench_train.mfu(blocks, head, 1000.0, 100.0, 1e12) == pytest.approx(everywhere - 6 * head * 900.0 / 1e12)
