"""Every third-party module the package, tests, benchmarks and experiments
import is declared in pyproject (dependencies or the `dev` extra CI installs).

A module that works here only because someone installed it by hand fails this
test, not a fresh machine's CI run; `test_fresh_install` then imports them all
in a clean virtual environment.
"""

from __future__ import annotations

import importlib.metadata

from suite_imports import declared_distributions, third_party_imports


def test_every_imported_module_comes_from_a_declared_distribution():
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions("dev")
    undeclared = {}
    for module in sorted(third_party_imports()):
        names = {name.lower().replace("_", "-") for name in providers.get(module, [])}
        if not names & declared:
            undeclared[module] = sorted(names) or "not installed here"
    assert not undeclared, f"imported but not declared in pyproject: {undeclared}"


def test_the_check_sees_a_module_only_the_benchmarks_import():
    # trl is imported by benchmarks/baseline_train.py alone: the scan must reach it,
    # and the dev extra must bring it (through the bench extra).
    assert "trl" in third_party_imports()
    assert {"trl", "datasets"} <= declared_distributions("dev")
