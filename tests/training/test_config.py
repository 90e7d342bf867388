"""TrainConfig is the one source of every training setting: the click options of
`riskdpo train` are made from it and agree with it, its validation runs when it is
built, and the shipped configurations of RESULTS.md are valid through the CLI."""

import dataclasses
import re
from pathlib import Path

import click
import pytest
import yaml

from riskdpo.commands.config_file import load_config_file
from riskdpo.commands.training import train as train_command
from riskdpo.core.errors import UserError
from riskdpo.training.config import RESULT_FREE_SETTINGS, TrainConfig, result_settings

ROOT = Path(__file__).resolve().parents[2]
RESULT_CONFIGS = sorted((ROOT / "configs" / "results").glob("*.yaml"))


def options() -> dict[str, click.Option]:
    return {param.name: param for param in train_command.params if param.name != "config"}


def test_every_field_has_an_option_with_the_same_default():
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    assert set(options()) == set(fields)
    for name, option in options().items():
        field = fields[name]
        if field.default is dataclasses.MISSING:
            assert option.required, name
        else:
            assert option.default == field.default, name
            assert not option.required, name


def test_option_types_follow_the_field_types():
    parsed = {name: option.type for name, option in options().items()}
    assert parsed["epochs"] is click.INT and parsed["warmup_steps"] is click.INT
    assert parsed["lr"] is click.FLOAT and parsed["lora_alpha"] is click.FLOAT
    assert parsed["model"] is click.STRING and parsed["system"] is click.STRING
    assert all(options()[name].is_flag for name in ("lora", "resume", "overwrite", "progress", "load_in_4bit"))


def test_the_spellings_of_the_original_scripts_and_the_flag_pairs_stay():
    spellings = {name: set(option.opts) | set(option.secondary_opts) for name, option in options().items()}
    assert spellings["model"] == {"--model", "--model_name"}
    assert spellings["batch_size"] == {"--batch-size", "--batch_size"}
    assert spellings["output_dir"] == {"--output-dir", "--output_dir"}
    assert spellings["wandb_project"] == {"--wandb-project", "--wandb_project"}
    assert spellings["grad_accum"] == {"--grad-accum", "--gradient_accumulation_steps"}
    assert spellings["lr"] == {"--lr", "--learning_rate"}
    assert spellings["lora"] == {"--lora", "--full"}
    assert spellings["chat_template"] == {"--chat-template", "--no-chat-template"}
    assert spellings["progress"] == {"--progress", "--no-progress"}


def parse(*args: str) -> dict:
    """The options `riskdpo train ARGS` would train with, parsed as the command does, without training."""
    context = train_command.make_context("train", list(args))
    return {name: value for name, value in context.params.items() if name != "config"}


def test_command_line_values_become_the_config():
    config = TrainConfig(**parse("--dataset", "p.jsonl", "--output_dir", "run", "--full", "--lr", "0.01",
                                 "--gradient_accumulation_steps", "3", "--no-chat-template"))
    assert (config.lora, config.lr, config.grad_accum, config.chat_template) == (False, 0.01, 3, False)
    assert config.epochs == TrainConfig.__dataclass_fields__["epochs"].default


@pytest.mark.parametrize("changes, message", [
    ({"beta": 0}, "--beta 0: must be greater than 0"),
    ({"scheduler": "step"}, "--scheduler step: choose one of linear, cosine"),
    ({"precision": "fp8"}, "--precision fp8: choose auto, bf16, fp16 or fp32"),
    ({"lora_targets": "q_proj,,v_proj"}, "--lora-targets 'q_proj,,v_proj'"),
    ({"resume": True, "overwrite": True}, "--resume continues a run and --overwrite replaces it"),
])
def test_building_a_config_validates_it(changes, message):
    with pytest.raises(UserError, match=re.escape(message)):
        TrainConfig(dataset="p.jsonl", output_dir="run", **changes)


def test_paths_become_text_for_run_json(tmp_path):
    config = TrainConfig(dataset=tmp_path / "p.jsonl", output_dir=tmp_path / "run")
    assert config.dataset == str(tmp_path / "p.jsonl") and config.output_dir == str(tmp_path / "run")


def test_result_settings_leave_out_only_what_cannot_change_a_result():
    settings = result_settings(TrainConfig(dataset="p.jsonl", output_dir="run"))
    assert set(settings) == {f.name for f in dataclasses.fields(TrainConfig)} - set(RESULT_FREE_SETTINGS)
    assert {"lr", "beta", "model", "dataset", "seed", "epochs", "log_every"} <= set(settings)


# ------------------------------------------------------ the configs of RESULTS.md


def test_results_script_trains_with_every_shipped_config_and_only_those():
    script = (ROOT / "experiments" / "results.sh").read_text()
    runs = re.findall(r"^train (\S+) \S+$", script, flags=re.MULTILINE)
    assert runs and sorted(runs) == sorted(path.stem for path in RESULT_CONFIGS)
    assert '--config "$configs/$run.yaml"' in script


@pytest.mark.parametrize("path", RESULT_CONFIGS, ids=lambda path: path.stem)
def test_shipped_config_is_valid_through_the_command_line(path):
    written = yaml.safe_load(path.read_text())
    assert path.read_text().startswith("# RESULTS.md, " + path.stem)  # commented: what run it is
    params = parse("--config", str(path), "--dataset", "pairs.jsonl", "--output-dir", "run")
    config = TrainConfig(**params)
    for key, value in load_config_file(path).items():
        assert getattr(config, key) == value, key
    assert len(written) == len(load_config_file(path))  # no key given twice in two spellings
    assert config.model == "smollm2-135m" and config.batch_size == 8 and config.seed == 0 and config.lora
