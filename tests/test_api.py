"""The public Python API: `from riskdpo import ...` gives the pipeline, lazily.

Each public name is imported on first use, so `import riskdpo` (and with it
`riskdpo --help`) loads no torch; the import checks run in fresh interpreters,
since this test process has torch loaded already.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import riskdpo
from helpers import SUBPROCESS_ENV

#: What the issue asks a notebook to find at the top level, stage by stage.
PIPELINE = [
    "read_situations", "load_situations", "save_situations",  # situations
    "select_pairs",  # pairs
    "TrainConfig", "train", "dpo_loss",  # training
    "evaluate_choices", "write_evaluation", "parse_answer",  # evaluation
    "certainty_equivalent", "best_labels",  # expected utility
]

#: Names whose modules need no torch: reading data, making pairs, parsing answers, economics.
TORCH_FREE = ["read_situations", "load_situations", "save_situations", "select_pairs", "parse_answer", "certainty_equivalent", "best_labels"]


def fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **SUBPROCESS_ENV}, timeout=300
    )


def loaded_after(code: str, modules: list[str]) -> list[str]:
    """Which of `modules` a fresh interpreter holds after running `code`."""
    probe = fresh_python(f"{code}\nimport sys\nprint(' '.join(m for m in {modules!r} if m in sys.modules))")
    assert probe.returncode == 0, probe.stderr
    return probe.stdout.split()


def test_the_pipeline_is_public():
    assert set(PIPELINE) <= set(riskdpo.__all__)
    assert set(riskdpo.__all__) <= set(dir(riskdpo))


@pytest.mark.parametrize("name", [name for name in riskdpo.__all__ if name != "__version__"])
def test_every_public_name_is_the_object_its_module_defines(name):
    module, attribute = riskdpo._EXPORTS[name].split(":")
    assert module.startswith("riskdpo.")
    assert getattr(riskdpo, name) is getattr(importlib.import_module(module), attribute)
    namespace: dict = {}
    exec(f"from riskdpo import {name}", namespace)
    assert namespace[name] is getattr(riskdpo, name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        riskdpo.trian  # noqa: B018
    assert not hasattr(riskdpo, "_not_public")


def test_importing_the_package_or_the_cli_loads_no_torch():
    assert loaded_after("import riskdpo", ["torch", "transformers", "riskdpo.training.run"]) == []
    assert loaded_after("import riskdpo.cli", ["torch", "transformers"]) == []


def test_data_pairs_and_answers_load_no_torch():
    touch = "; ".join(f"riskdpo.{name}" for name in TORCH_FREE)
    assert loaded_after(f"import riskdpo; {touch}", ["torch", "transformers"]) == []


def test_a_name_loads_its_module_on_first_use():
    module = riskdpo._EXPORTS["train"].split(":")[0]
    assert loaded_after("import riskdpo", [module]) == []
    assert loaded_after("import riskdpo; riskdpo.train", [module]) == [module]


def test_the_issues_one_liner_runs():
    probe = fresh_python(
        "import riskdpo; riskdpo.train; riskdpo.evaluate_choices; riskdpo.dpo_loss; riskdpo.parse_answer; "
        "print(riskdpo.__version__)"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == riskdpo.__version__
