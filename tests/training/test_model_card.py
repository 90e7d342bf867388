"""Issue 27, part 2: every final-model/ riskdpo writes has a README.md model card
(Hugging Face front matter, method, data, the command that reproduces it, the
version), and eval-choices / report add the evaluation to it.

The card's reproduce command is run as written (only --output-dir changed) and
must give the same weights; the data line's sha256 is the pairs file's.
"""

import hashlib
import json
import shlex

import pytest
import torch
import yaml

from helpers import final_weights, pairs_path, run_cli, tiny_model  # noqa: F401
from riskdpo.core.version import __version__
from riskdpo.training.model_card import CARD_MARK, model_card

OPTIONS = ["--epochs", "1", "--batch-size", "4", "--lr", "5e-3", "--beta", "0.3", "--lora-rank", "4",
           "--max-length", "128", "--seed", "5", "--no-progress"]


def front_matter(card):
    _, front, body = card.split("---\n", 2)
    return yaml.safe_load(front), body


@pytest.fixture(scope="module")
def trained(tiny_model, pairs_path, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("carded") / "run"
    result = run_cli("train", "--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model),
                     *OPTIONS)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_final_model_has_a_card_with_metadata_method_and_data(trained, tiny_model, pairs_path):  # noqa: F811
    card = (trained / "final-model" / "README.md").read_text()
    front, body = front_matter(card)
    assert front["base_model"] == str(tiny_model) and front["library_name"] == "transformers"
    assert {"riskdpo", "dpo", "lora"} <= set(front["tags"])
    sha256 = hashlib.sha256(pairs_path.read_bytes()).hexdigest()
    assert f"sha256 `{sha256}`, 16 pairs (16 used), sheets: hand-written (16)" in body
    assert "DPO, loss `sigmoid`, β = 0.3" in body and "LoRA rank 4, alpha 32.0" in body
    assert f"riskdpo {__version__}" in body and CARD_MARK in card


def test_the_cards_command_reproduces_the_weights(trained, tmp_path):
    card = (trained / "final-model" / "README.md").read_text()
    command = card.split("## Reproduce\n\n```\n", 1)[1].split("\n```", 1)[0]
    args = shlex.split(command)
    assert args[:2] == ["riskdpo", "train"]
    again = tmp_path / "again"
    args[args.index("--output-dir") + 1] = str(again)
    result = run_cli(*args[1:], "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    original, reproduced = final_weights(trained), final_weights(again)
    assert original.keys() == reproduced.keys() and all(torch.equal(original[k], reproduced[k]) for k in original)


def test_eval_and_report_add_the_evaluation_to_the_card(trained, tmp_path):
    final = trained / "final-model"
    report = tmp_path / "low.json"
    args = ["eval-choices", "--model", str(final), "--situations", "data/sample.xlsx", "--sheet", "test_low",
            "--sample", "12", "--bootstrap", "0", "--no-progress", "-o", str(report)]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"added the evaluation to {final / 'README.md'}" in result.stdout
    model = json.loads(report.read_text())["models"][0]
    card = (final / "README.md").read_text()
    low, high = model["intervals"]["risk_averse"]
    assert f"| risk_averse | {model['rates']['risk_averse']:.3f} | [{low:.3f}, {high:.3f}] |" in card
    assert "Position-only reference: always naming option line" in card
    assert run_cli(*args).returncode == 0  # the same report again: its block is replaced, not repeated
    assert (final / "README.md").read_text().count(f"### Evaluation: `{report}`") == 1

    other = tmp_path / "medium.json"
    result = run_cli(*args[:6], "test_medium", *args[7:-1], str(other))
    assert result.returncode == 0, result.stderr[-3000:]
    card = (final / "README.md").read_text()
    with_two = card.replace(card[card.index(f"<!-- riskdpo:evaluation {other}"):], "")  # drop the second block
    (final / "README.md").write_text(with_two)
    shown = run_cli("report", str(trained), "--eval", str(other), "-o", str(tmp_path / "figures"))
    assert shown.returncode == 0, shown.stderr[-3000:]
    card = (final / "README.md").read_text()
    assert card.count("\n## Evaluation\n") == 1 and f"### Evaluation: `{report}`" in card
    assert f"### Evaluation: `{other}`" in card  # report --eval added it back
    assert front_matter(card)[0]["library_name"] == "transformers"  # the front matter is untouched


def test_an_adapter_card_names_peft_and_its_base():
    run_info = {"config": {"model": "smollm2-135m", "objective": "sft", "lora": True, "lora_rank": 8, "lora_alpha": 16.0,
                           "lora_dropout": 0.0, "lora_targets": "all-linear", "epochs": 2, "lr": 1e-4, "seed": 0,
                           "dataset": "cot.jsonl", "output_dir": "sft-run", "progress": False},
                "dataset": {"path": "/data/cot.jsonl", "sha256": "ab" * 32, "pairs": 10, "used": 9, "sheets": {"train": 10}},
                "versions": {"riskdpo": __version__}, "steps": 6, "global_batch_size": 4, "precision": "bf16"}
    front, body = front_matter(model_card(run_info, adapter=True))
    assert front == {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "library_name": "peft",
                     "tags": ["riskdpo", "sft", "risk-aversion", "lora", "peft"], "pipeline_tag": "text-generation"}
    assert "This folder holds a LoRA adapter" in body and "PeftModel.from_pretrained" in body
    assert "supervised fine-tuning" in body and "sheets: train (10)" in body
    assert "riskdpo train --model smollm2-135m --objective sft --lora --lora-rank 8" in body
