"""Which third-party modules the project's code imports, and which
distributions its pyproject declares: the two lists a fresh install must agree
on (a test that needs an undeclared package passes only where someone
installed it by hand)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Folders whose code runs in CI: the package, its tests, benchmarks and experiments.
CODE_DIRS = ("riskdpo", "tests", "benchmarks", "experiments")
#: Imported only on Python versions older than the one named.
VERSION_GATED = {"tomli": (3, 11)}


def _python_files() -> list[Path]:
    return sorted(path for folder in CODE_DIRS for path in (ROOT / folder).rglob("*.py"))


def third_party_imports() -> set[str]:
    """Top-level names of every module imported anywhere in CODE_DIRS (nested
    imports included), less the standard library and the project's own modules."""
    files = _python_files()
    own = {path.stem for path in files} | {"riskdpo"}
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names - own - set(sys.stdlib_module_names)
            if sys.version_info < VERSION_GATED.get(name, (99,))}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared_distributions(extra: str = "dev") -> set[str]:
    """Distributions `pip install -e ".[extra]"` brings: the dependencies plus
    the extra, following the project's references to its own extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    pending, seen = [extra], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in project["optional-dependencies"][name]:
            own_extra = re.fullmatch(rf"{project['name']}\[([\w,-]+)\]", requirement.strip())
            if own_extra:
                pending.extend(own_extra.group(1).split(","))
            else:
                declared.add(_requirement_name(requirement))
    return declared
