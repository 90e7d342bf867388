"""The oldest Python that pyproject.toml declares runs riskdpo, where it is installed here.

The declared range is only true when it is tried: every module must compile under
the oldest version (no syntax of a newer one), and the command line must start
there, which takes its light dependencies only (tomli stands in for 3.11's
tomllib). Torch and the model libraries are not installed for it (gigabytes), so
this also proves that `--help`, `--version` and `make-pairs` need none of them.
Slow (a new virtual environment, a few packages), so it is marked and runs in CI.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from riskdpo.cli import main
from riskdpo.data.convert import read_situations
from riskdpo.data.situations import save_situations

ROOT = Path(__file__).resolve().parents[1]

#: What `riskdpo --help` imports beyond the standard library (tomli: on 3.10 only).
LIGHT_DEPENDENCIES = ["click", "pyyaml", "numpy", "tomli"]


def oldest_supported() -> tuple[int, int]:
    """The lower bound of pyproject's `requires-python = ">=X.Y"`."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    major, minor = re.search(r'^requires-python = ">=(\d+)\.(\d+)"', text, flags=re.M).groups()
    return int(major), int(minor)


def find_python(version: tuple[int, int]) -> str | None:
    """An interpreter of that version that runs: on PATH, or under pyenv's versions folder."""
    name = "python{}.{}".format(*version)
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [shutil.which(name), *sorted(glob.glob(f"{pyenv}/versions/{version[0]}.{version[1]}.*/bin/python3"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.split() == [str(part) for part in version]:
            return candidate
    return None


OLDEST = oldest_supported()
PYTHON = find_python(OLDEST)
needs_oldest = pytest.mark.skipif(PYTHON is None, reason="Python {}.{} is not installed here".format(*OLDEST))


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the test interpreter's own PYTHONPATH or virtual environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


@pytest.mark.slow
@needs_oldest
def test_every_module_compiles_under_the_oldest_version(tmp_path):
    compiled = subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(ROOT / "riskdpo")],
        capture_output=True, text=True, env=clean_env(PYTHONPYCACHEPREFIX=str(tmp_path / "pycache")),
    )
    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-3000:]
    assert list((tmp_path / "pycache").rglob("*.cpython-{}{}.pyc".format(*OLDEST)))


@pytest.mark.slow
@needs_oldest
def test_the_cli_runs_under_the_oldest_version_without_torch(tmp_path):
    """Install riskdpo (no dependencies) and the light ones into a new environment, then run it."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "riskdpo", source / "riskdpo", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    env = clean_env()
    subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True, env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    for command in (pip + LIGHT_DEPENDENCIES, pip + ["--no-deps", str(source)]):
        install = subprocess.run(command, capture_output=True, text=True, env=env)
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    riskdpo = str(venv / "bin" / "riskdpo")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([riskdpo, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    version = run("--version")
    assert version.returncode == 0, version.stderr[-3000:]
    assert version.stdout.strip() == "riskdpo, version 0.1.0"
    overview = run("--help")
    assert overview.returncode == 0, overview.stderr
    assert set(main.commands) <= set(re.findall(r"^  ([a-z-]+)", overview.stdout, flags=re.M))
    for name in main.commands:
        assert run(name, "--help").returncode == 0, name
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True, env=env)
    assert probe.returncode != 0, "torch is installed in the environment, so this proves nothing"

    # A real command, its options from a TOML file: tomllib on 3.11+, tomli here.
    save_situations(read_situations(ROOT / "data" / "sample.xlsx", sheet="train").situations, tmp_path / "situations.json")
    (tmp_path / "options.toml").write_text('sheets = ["train"]\nsample_size = 5\nseed = 3\n', encoding="utf-8")
    pairs = run("make-pairs", "--config", "options.toml", "situations.json", "-o", "pairs.jsonl")
    assert pairs.returncode == 0, pairs.stderr
    assert len((tmp_path / "pairs.jsonl").read_text(encoding="utf-8").splitlines()) == 5
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 3\n", encoding="utf-8")
    refused = run("make-pairs", "--config", "bad.toml", "situations.json", "-o", "never.jsonl")
    assert refused.returncode == 2 and refused.stderr.startswith("error: bad.toml: not a valid config file")
    assert not (tmp_path / "never.jsonl").exists()
