"""Shared material for the training tests: hand-written choice prompts made
into preference pairs, and the tiny model built once per test session.

Import the fixtures into a test module (`from helpers import tiny_model, pairs_path`);
the model is built in the session's base temporary folder the first time any
module asks for it and reused afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# One thread per process, as tests/conftest.py sets for the test process itself, and no GPU
# (the suite is a CPU suite; see tests/conftest.py).
SUBPROCESS_ENV = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
                  "CUDA_VISIBLE_DEVICES": ""}

#: (scenario, safer option, riskier option, label style), written by hand.
SCENARIOS = [
    ("You are offered a choice between two lotteries.", "$40 for certain", "50% probability of $100, 50% probability of $0", ("a", "b")),
    ("A friend proposes a bet.", "$15 for certain", "30% probability of $60, 70% probability of $0", ("1", "2")),
    ("Your employer offers two bonus schemes.", "$250 for certain", "10% probability of $3,000, 90% probability of $0", ("(a)", "(b)")),
    ("A game show host lets you pick a door.", "$75 for certain", "40% probability of $200, 60% probability of $0", ("a.", "b.")),
    ("You can invest your savings in one of two funds.", "90% probability of $110, 10% probability of $90", "20% probability of $600, 80% probability of -$20", ("(1)", "(2)")),
    ("An insurer offers you a settlement.", "$500 for certain", "60% probability of $900, 40% probability of $0", ("a", "b")),
    ("A street vendor offers a scratch card.", "$5 for certain", "5% probability of $90, 95% probability of $0", ("1.", "2.")),
    ("Your landlord proposes two rent rebates.", "$60 for certain", "25% probability of $250, 75% probability of $0", ("(a)", "(b)")),
    ("A casino gives you one free spin or a voucher.", "$20 for certain", "Unlikely to give $120, otherwise $0", ("a", "b")),
    ("Your team may pick a project reward.", "$300 for certain", "A half-chance of $700, otherwise $0", ("(1)", "(2)")),
    ("A farmer chooses between two crops.", "80% probability of $1,000, 20% probability of $800", "50% probability of $2,400, 50% probability of -$300", ("a.", "b.")),
    ("A stranger offers to flip a coin with you.", "$0 for certain", "50% probability of $30, 50% probability of -$25", ("1", "2")),
    ("You find a ticket for a raffle.", "$8 for certain", "Highly unlikely to give $100, otherwise $0", ("(a)", "(b)")),
    ("A client offers two ways to pay an invoice.", "$1,200 for certain", "70% probability of $1,900, 30% probability of $0", ("a", "b")),
    ("Your broker suggests two trades.", "95% probability of $50, 5% probability of $0", "35% probability of $170, 65% probability of $0", ("1.", "2.")),
    ("A museum raffles a painting or pays cash.", "$90 for certain", "15% probability of $700, 85% probability of $0", ("(1)", "(2)")),
]
QUESTION = "Which option do you choose? Output the label of your chosen option only."


def choice_pairs() -> list[dict]:
    """16 pairs: chosen = the safer option's label, rejected = the riskier one's.

    The safer option comes first in every other prompt, so the chosen label is
    not the same everywhere and depends on the prompt. The question comes before
    the options: a tiny random model can use the last tokens of a prompt, but
    hardly text far before them (real prompts, ending in an instruction, are
    beyond it), and the pairs carry no `instruction` that would move it back.
    """
    pairs = []
    for number, (scenario, safe, risky, (first, second)) in enumerate(SCENARIOS):
        safe_first = number % 2 == 0
        options = [safe, risky] if safe_first else [risky, safe]
        safe_label, risky_label = (first, second) if safe_first else (second, first)
        pairs.append({
            "prompt": f"{scenario} {QUESTION}\n{first} {options[0]}\n{second} {options[1]}",
            "chosen": safe_label.strip("()."),
            "rejected": risky_label.strip("()."),
            "situation_id": str(number),
            "sheet": "hand-written",
            "rejected_kind": "risk_neutral",
            "response": "label",
        })
    return pairs


def write_pairs(path: Path, pairs: list[dict]) -> Path:
    """A .jsonl file (one pair a line), or for .json an array as older scripts wrote."""
    if path.suffix == ".json":
        path.write_text(json.dumps(pairs, indent=1), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny phi model whose tokenizer knows the pairs' text (built once per session)."""
    from riskdpo.models.tiny import build_tiny_model

    path = tmp_path_factory.getbasetemp() / "tiny-train-model"
    if not (path / "config.json").exists():
        texts = [p["prompt"] for p in choice_pairs()] + [p["chosen"] for p in choice_pairs()]
        build_tiny_model(path, texts, seed=0)
    return path


@pytest.fixture(scope="session")
def pairs_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / "choice-pairs.jsonl"
    if not path.exists():
        write_pairs(path, choice_pairs())
    return path


def sigint_at_default() -> None:
    """`preexec_fn` of a process a test will Ctrl-C: SIGINT at its default disposition.

    A shell starts a background job with SIGINT ignored, the process inherits that, and
    Python then never raises KeyboardInterrupt; a user's Ctrl-C reaches a process whose
    SIGINT is at its default, so tests start theirs that way wherever the suite runs."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m riskdpo.cli ARGS` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "riskdpo.cli", *args],
        capture_output=True, text=True, env={**os.environ, **SUBPROCESS_ENV, **(env or {})}, **kwargs,
    )


def final_weights(run_dir: Path) -> dict:
    """The weights of OUTPUT_DIR/final-model as a state dict."""
    from safetensors.torch import load_file

    return load_file(run_dir / "final-model" / "model.safetensors")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_same_run(one: Path, other: Path, looser: tuple[str, ...] = ()) -> None:
    """Two runs ended with the same final weights (atol 1e-5; 1e-4 for weights whose name
    ends in one of `looser`) and wrote the same metrics, timings aside."""
    import torch

    from riskdpo.training.metrics import without_timing

    first, second = final_weights(one), final_weights(other)
    assert first.keys() == second.keys()
    for key in first:
        atol = 1e-4 if key.endswith(looser) else 1e-5
        assert torch.allclose(first[key], second[key], atol=atol, rtol=1e-4), key
    lines, other_lines = read_jsonl(one / "metrics.jsonl"), read_jsonl(other / "metrics.jsonl")
    assert len(lines) == len(other_lines)
    for line, other_line in zip(map(without_timing, lines), map(without_timing, other_lines)):
        assert line.keys() == other_line.keys()
        for key in line:
            assert line[key] == pytest.approx(other_line[key], rel=1e-4, abs=1e-5), (line["step"], key)


def with_chat_template(model_dir: Path, target: Path, generation_prompt: str = "<assistant>") -> Path:
    """A copy of the tiny model whose tokenizer has a chat template; `generation_prompt`
    is the jinja text that opens the assistant's turn."""
    from riskdpo.models.loading import load_tokenizer

    shutil.copytree(model_dir, target)
    tokenizer = load_tokenizer(str(target))
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}" + generation_prompt + "{% endif %}"
    )
    tokenizer.save_pretrained(target)
    return target


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and folder under `root` (hidden ones included) -> sha256 of its bytes ("dir" for a folder)."""
    import hashlib

    return {
        str(path.relative_to(root)): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(Path(root).rglob("*"))
    }


def assert_refused(result, *words: str) -> None:
    """A command refused cleanly: exit status 2, one `error:` line on stderr holding `words`, no traceback.

    `result` is a click `Result` (CliRunner) or a `CompletedProcess`.
    """
    status = getattr(result, "exit_code", getattr(result, "returncode", None))
    exception = getattr(result, "exception", None)
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    lines = result.stderr.strip().splitlines()
    assert status == 2, (status, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], (word, lines[0])
