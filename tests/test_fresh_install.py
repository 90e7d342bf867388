"""A new user's first minutes: clone, the README's set-up in a clean virtual
environment, then `riskdpo demo --model tiny`.

Slow (it installs torch and the rest into a new environment), so it is marked
and runs in CI, not in a quick local loop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from suite_imports import third_party_imports
from test_readme import setup_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_setup_in_a_clean_venv_then_tiny_demo(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python3"
    command = setup_command().replace("python3 ", f"{python} ")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", WANDB_MODE="offline", HF_HUB_OFFLINE="1")
    install = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    # The whole suite's dependencies, not only the demo's: every third-party module
    # the package, tests, benchmarks and experiments import loads in the new venv.
    modules = sorted(third_party_imports())
    imports = subprocess.run([str(python), "-c", "; ".join(f"import {name}" for name in modules)],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert imports.returncode == 0, imports.stderr[-3000:]

    demo = subprocess.run([str(venv / "bin" / "riskdpo"), "demo", "--model", "tiny", "--out", str(tmp_path / "demo")],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert re.search(r"before \(base\):\s+[0-9.]+ \[", demo.stdout)
    assert re.search(r"after \(tuned\):\s+[0-9.]+ \[", demo.stdout)
    assert (tmp_path / "demo" / "eval.json").is_file()
    version = subprocess.run([str(venv / "bin" / "riskdpo"), "--version"], env=env, capture_output=True, text=True)
    assert version.stdout.strip().startswith("riskdpo, version")
