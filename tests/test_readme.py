"""README.md stays true: CI runs exactly its set-up and test commands, every
command docs/commands.md documents exists, and its "Use from Python" section runs."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from helpers import SUBPROCESS_ENV, read_jsonl

from riskdpo.cli import main
from riskdpo.data.situations import load_situations

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
COMMANDS = (ROOT / "docs" / "commands.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


#: The README's test command: two worker processes (pytest-xdist), each test file in one of them.
TEST_COMMAND = "python3 -m pytest -q -n 2 --dist loadfile"


def setup_command() -> str:
    """The README's one-line set-up command (the first `pip install torch` line)."""
    return next(line for line in README.splitlines() if line.startswith("python3 -m pip install torch=="))


def test_ci_runs_the_readmes_setup_and_test_commands():
    assert setup_command() in CI.splitlines()
    assert TEST_COMMAND in README.splitlines()
    assert TEST_COMMAND in CI.splitlines()


def test_every_documented_command_exists():
    documented = set(re.findall(r"^## `riskdpo ([a-z-]+)`", COMMANDS, flags=re.M))
    assert documented <= set(main.commands), documented - set(main.commands)
    assert {"convert", "make-pairs", "train", "eval-choices", "demo", "generate", "report", "tiny-model"} <= set(main.commands)


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in main.commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "riskdpo " + name in result.output or "Example" in result.output, name


def python_section() -> str:
    """The code block of the README's "Use from Python" section."""
    section = README.split("\n## Use from Python\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"^```python\n(.*?)^```$", section, flags=re.M | re.S).group(1)


def test_the_python_section_runs_the_whole_pipeline(tmp_path):
    """The section, run as a user would: a fresh interpreter in a folder holding data/sample.xlsx."""
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "data" / "sample.xlsx", tmp_path / "data" / "sample.xlsx")
    (tmp_path / "pipeline.py").write_text(python_section(), encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **SUBPROCESS_ENV, "PYTHONPATH": path}
    run = subprocess.run([sys.executable, "pipeline.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    situations = load_situations(tmp_path / "situations.json")
    assert {"train", "test_high"} <= {s.sheet for s in situations}
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    assert len(pairs) == 8 and {pair["sheet"] for pair in pairs} == {"train"}
    assert all(pair["chosen"] != pair["rejected"] for pair in pairs)
    assert (tmp_path / "run" / "final-model" / "config.json").is_file()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["epochs"] == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert [model["n"] for model in report["models"]] == [20, 20]
    assert len(report["comparisons"]) == 1
    with open(tmp_path / "report.csv", newline="", encoding="utf-8") as rows:
        assert len(list(csv.DictReader(rows))) == 2 * 20
    assert (tmp_path / "report.png").stat().st_size > 0
    assert "risk-averse" in run.stdout and "run/final-model" in run.stdout
