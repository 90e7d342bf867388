"""README.md stays true: CI runs exactly its set-up and test commands, and every
command it documents exists."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from riskdpo.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def setup_command() -> str:
    """The README's one-line set-up command (the first `pip install torch` line)."""
    return next(line for line in README.splitlines() if line.startswith("python3 -m pip install torch=="))


def test_ci_runs_the_readmes_setup_and_test_commands():
    assert setup_command() in CI.splitlines()
    assert "python3 -m pytest -q" in README.splitlines()
    assert "python3 -m pytest -q" in CI.splitlines()


def test_every_documented_command_exists():
    documented = set(re.findall(r"^### `riskdpo ([a-z-]+)`", README, flags=re.M))
    assert documented <= set(main.commands), documented - set(main.commands)
    assert {"convert", "make-pairs", "train", "eval-choices", "demo", "generate", "report", "tiny-model"} <= set(main.commands)


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in main.commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "riskdpo " + name in result.output or "Example" in result.output, name
