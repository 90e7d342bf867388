"""The README.md model card of a model folder riskdpo writes, in the Hugging Face format.

A card is YAML front matter (the hub reads `base_model`, `library_name`,
`tags`) and markdown: the base model, the method and objective (loss, β, LoRA
settings), the data (the pairs file's sha256, its pairs and sheets), the
command that reproduces the run, and riskdpo's version. `model_card(run_info)`
makes it from the run's run.json record alone, a pure function, so the same
text comes from a run and from a notebook; `adapter=True` makes the card of a
saved LoRA adapter folder (`library_name: peft`, loaded on its base).

An evaluation appends its summary (`evaluation_section`: the rates of each
choice category with 95% Wilson intervals, and the position-only chooser's
rate, the reference a model must beat without reading the options) between
markers named by its report file, so evaluating again with the same report
replaces that block and another report adds one (`with_evaluation`).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any, Mapping

#: Short model names riskdpo resolves itself, and the hub id a card names as their base.
HUB_IDS = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}
#: Marks a card riskdpo wrote (and may update).
CARD_MARK = "<!-- written by riskdpo -->"
_EVAL_START = "<!-- riskdpo:evaluation {source} -->"
_EVAL_END = "<!-- riskdpo:evaluation end -->"
#: train options that never change the model; left out of the command that reproduces it.
_NOT_REPRODUCED = ("progress", "resume", "overwrite", "dry_run", "force", "wandb_project")


def model_card(run_info: Mapping[str, Any], *, adapter: bool = False) -> str:
    """The card of a run's `final-model/` (or, with `adapter`, of its saved LoRA adapter) from its run.json record."""
    config = run_info["config"]
    base = HUB_IDS.get(config["model"], config["model"])
    objective = config.get("objective", "dpo")
    tags = ["riskdpo", objective, "risk-aversion", "lora" if config.get("lora", True) else "full-fine-tuning"]
    if adapter:
        tags.append("peft")
    front = {"base_model": base, "library_name": "peft" if adapter else "transformers", "tags": tags,
             "pipeline_tag": "text-generation"}
    front_lines = [f"{key}: {json.dumps(value)}" if not isinstance(value, list) else
                   f"{key}:\n" + "".join(f"- {item}\n" for item in value).rstrip("\n") for key, value in front.items()]
    what = "a LoRA adapter" if adapter else ("the base model with its LoRA adapter merged in" if config.get("lora", True)
                                              else "the fully fine-tuned model")
    lines = [
        "---", *front_lines, "---", CARD_MARK, "",
        f"# {base}, fine-tuned with riskdpo to be risk-averse", "",
        f"This folder holds {what}, trained by riskdpo {run_info.get('versions', {}).get('riskdpo', '')} "
        f"from `{base}` to choose the option a risk-averse agent (CARA utility u(w) = 1 − e^(−0.01·w)) picks "
        "among lotteries.", "",
        "## Method", "",
        *_method(config, run_info), "",
        "## Data", "",
        *_data(run_info), "",
        "## Reproduce", "",
        "```", reproduce_command(config), "```", "",
        *_loading(base, adapter), "",
        "## Versions", "",
        ", ".join(f"{name} {number}" for name, number in sorted((run_info.get("versions") or {}).items())), "",
    ]
    return "\n".join(lines)


def _method(config: Mapping[str, Any], run_info: Mapping[str, Any]) -> list[str]:
    if config.get("objective", "dpo") == "sft":
        objective = "supervised fine-tuning: L = −Σ log π(y_c|x) / Σ|y_c| over the chosen responses (no reference model)"
    else:
        objective = (f"DPO, loss `{config.get('loss', 'sigmoid')}`, β = {config.get('beta')}, label smoothing "
                     f"{config.get('label_smoothing', 0.0)}")
        if config.get("nll_weight"):
            objective += f", plus {config['nll_weight']} × the chosen response's length-normalised NLL (RPO)"
        if config.get("sft_epochs"):
            objective += f"; after {config['sft_epochs']} supervised warm-up epoch(s), whose model is the reference"
    if config.get("lora", True):
        weights = (f"LoRA rank {config.get('lora_rank')}, alpha {config.get('lora_alpha')}, dropout "
                   f"{config.get('lora_dropout')}, targets `{config.get('lora_targets')}`"
                   + (" on a 4-bit (QLoRA) base" if config.get("load_in_4bit") else ""))
    else:
        weights = f"all weights, the embeddings and the first {config.get('freeze_layers', 0)} blocks frozen"
    return [
        f"- Objective: {objective}",
        f"- Trained weights: {weights}",
        f"- Optimisation: {config.get('epochs')} epoch(s), {run_info.get('steps')} steps of "
        f"{run_info.get('global_batch_size')} pairs, AdamW lr {config.get('lr')} ({config.get('scheduler')} decay, "
        f"warm-up {config.get('warmup_steps') or config.get('warmup_ratio')}), weight decay "
        f"{config.get('weight_decay')}, seed {config.get('seed')}",
        f"- Precision {run_info.get('precision')}, max length {config.get('max_length')} tokens, "
        f"{run_info.get('world_size', 1)} process(es)",
    ]


def _data(run_info: Mapping[str, Any]) -> list[str]:
    lines = []
    for name, info in (("training", run_info.get("dataset")), ("validation", run_info.get("val"))):
        if not info:
            continue
        sheets = info.get("sheets") or {}
        listed = ", ".join(f"{sheet} ({count})" for sheet, count in sorted(sheets.items())) or "not recorded"
        lines.append(f"- {name} pairs: `{info['path'].rsplit('/', 1)[-1]}`, sha256 `{info['sha256']}`, "
                     f"{info['pairs']} pairs ({info.get('used', info['pairs'])} used), sheets: {listed}")
    response = run_info.get("response")
    if response:
        lines.append(f"- responses: {response}")
    return lines


def reproduce_command(config: Mapping[str, Any]) -> str:
    """`riskdpo train` with every option the run set (defaults included, so the command keeps meaning the same)."""
    parts = ["riskdpo", "train"]
    for key, value in config.items():
        if key in _NOT_REPRODUCED or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flag = {"lora": "--lora" if value else "--full",
                    "chat_template": "--chat-template" if value else "--no-chat-template"}.get(key, flag)
            if key in ("lora", "chat_template") or value:
                parts.append(flag)
            continue
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        parts += [flag, str(value)]
    return shlex.join(parts)


def _loading(base: str, adapter: bool) -> list[str]:
    if adapter:
        code = ["from peft import PeftModel", "from transformers import AutoModelForCausalLM",
                f"model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), FOLDER)"]
    else:
        code = ["from transformers import AutoModelForCausalLM, AutoTokenizer",
                "model = AutoModelForCausalLM.from_pretrained(FOLDER)", "tokenizer = AutoTokenizer.from_pretrained(FOLDER)"]
    return ["## Use", "", "```python", *code, "```"]


# ---------------------------------------------------------------- evaluations


def evaluation_section(report: Mapping[str, Any], model: Mapping[str, Any], source: str) -> str:
    """One model's results in an eval-choices report (`model`: its entry in report["models"]) as card markdown."""
    situations = report.get("situations") or {}
    lines = [_EVAL_START.format(source=source), f"### Evaluation: `{source}`", "",
             f"eval-choices ({report.get('mode')} mode, riskdpo {report.get('version')}), "
             f"{model.get('n')} situations scored of {situations.get('selected', model.get('n'))}; "
             "rates with 95% Wilson intervals:", "",
             "| choice | rate | 95% interval | count |", "|---|---|---|---|"]
    for category in report.get("categories", model.get("rates", {})):
        low, high = model["intervals"][category]
        lines.append(f"| {category} | {model['rates'][category]:.3f} | [{low:.3f}, {high:.3f}] | "
                     f"{model['counts'][category]} |")
    chooser = report.get("position_chooser") or {}
    if "best" in chooser:
        lines += ["", f"Position-only reference: always naming option line {chooser['best_line']} is risk-averse in "
                      f"{chooser['best']:.3f} of these situations, without reading the options."]
    return "\n".join([*lines, _EVAL_END])


def with_evaluation(card: str, section: str) -> str:
    """`card` with `section` (from `evaluation_section`) in place of the block of the same report, or appended."""
    start = section.splitlines()[0]
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(_EVAL_END), re.DOTALL)
    if pattern.search(card):
        return pattern.sub(lambda _: section, card, count=1)
    heading = "## Evaluation"
    body = card.rstrip("\n")
    return f"{body}\n\n{section}\n" if heading in card else f"{body}\n\n{heading}\n\n{section}\n"


def record_evaluation(folder: str | Path, report: Mapping[str, Any], source: str) -> Path | None:
    """Add the results of `folder`'s model in `report` to its card; the card's path, or None when
    the folder has no card riskdpo wrote or the report did not score it."""
    from riskdpo.core.fileio import atomic_path

    card_path = Path(folder) / "README.md"
    if not card_path.is_file():
        return None
    card = card_path.read_text(encoding="utf-8")
    target = Path(folder).resolve()
    entries = [entry for entry in report.get("models", []) if Path(str(entry.get("model"))).resolve() == target]
    if CARD_MARK not in card or not entries:
        return None
    with atomic_path(card_path) as tmp:
        Path(tmp).write_text(with_evaluation(card, evaluation_section(report, entries[0], source)), encoding="utf-8")
    return card_path
