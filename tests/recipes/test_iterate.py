"""`riskdpo iterate`: rounds of sample -> pair -> train (DPO + NLL) -> evaluate on the
real tiny model, each round starting from the last round's model; the shipped
config is a valid recipe; a round without pairs stops the recipe with one line."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from helpers import tiny_model  # noqa: F401 (fixture)
from riskdpo.cli import main
from riskdpo.commands.config_file import load_config_file
from riskdpo.data.answers import parse_answer
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.situations import load_situations, save_situations
from riskdpo.recipes.iterate import IterateConfig

ROOT = Path(__file__).resolve().parents[2]
# random weights answer mostly nonsense: many short samples give a few that name an option
SAMPLE = {"samples": 40, "temperature": 1.5, "max_new_tokens": 2, "batch_size": 40, "precision": "fp32", "seed": 3}
TRAIN = {"epochs": 1, "batch_size": 4, "lr": 5.0e-3, "nll_weight": 0.5, "max_length": 256, "chat_template": False,
         "progress": False, "seed": 1}
EVALUATE = {"batch_size": 8, "precision": "fp32", "bootstrap": 20}


def write_config(tmp_path: Path, model: Path, **changes) -> Path:
    situations = tmp_path / "situations.json"
    save_situations(generate_situations(GenerateSpec(situations=8, seed=1)), situations)
    settings = {"model": str(model), "situations": str(situations), "output_dir": str(tmp_path / "iterate"),
                "rounds": 2, "sample": SAMPLE, "train": TRAIN, "evaluate": EVALUATE, **changes}
    path = tmp_path / "iterate.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def test_two_rounds_each_train_from_the_last_model_and_keep_their_report(tiny_model, tmp_path):  # noqa: F811
    config = write_config(tmp_path, tiny_model)
    result = CliRunner().invoke(main, ["iterate", str(config)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "iterate"
    situations = {s.situation_id: s for s in load_situations(tmp_path / "situations.json")}
    started_from = str(tiny_model)
    for number in (1, 2):
        folder = out / f"round-{number}"
        final = folder / "train" / "final-model"
        assert (final / "config.json").exists()
        run = json.loads((folder / "train" / "run.json").read_text())
        assert run["status"] == "finished" and run["config"]["model"] == started_from
        assert run["config"]["nll_weight"] == 0.5 and run["config"]["dataset"] == str(folder / "pairs.jsonl")
        pairs = [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]
        assert pairs and len(pairs) == run["dataset"]["pairs"]
        for pair in pairs:  # only correctly graded answers are chosen
            situation = situations[pair["situation_id"]]
            assert parse_answer(pair["chosen"], situation.option_labels, situation.answer_variants) in situation.risk_averse
        report = json.loads((folder / "report.json").read_text())
        assert [m["model"] for m in report["models"]] == [str(final)]
        assert (folder / "report.csv").exists() and (folder / "report.png").exists()
        assert f"round {number}: pairs written: {len(pairs)}" in result.output
        started_from = str(final)
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["started_from"] for r in rounds] == [str(tiny_model), str(out / "round-1" / "train" / "final-model")]
    # the two rounds sampled with different seeds from different models
    assert (out / "round-1" / "pairs.jsonl").read_bytes() != (out / "round-2" / "pairs.jsonl").read_bytes()


def test_a_round_without_pairs_stops_with_one_line(tiny_model, tmp_path):  # noqa: F811
    config = write_config(tmp_path, tiny_model, sample={**SAMPLE, "samples": 1, "max_new_tokens": 1})
    result = CliRunner().invoke(main, ["iterate", str(config)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "round 1: no situation gave both a chosen and a rejected answer" in result.stderr
    assert not (tmp_path / "iterate").exists()


def test_settings_are_checked_before_anything_runs(tiny_model, tmp_path):  # noqa: F811
    for changes, message in (({"train": {**TRAIN, "lr": -1}}, "--lr -1"),
                             ({"sample": {**SAMPLE, "sampels": 3}}, "sample: unknown setting 'sampels'"),
                             ({"train": {**TRAIN, "dataset": "x"}}, "train: unknown setting 'dataset'"),
                             ({"rounds": 0}, "rounds 0")):
        result = CliRunner().invoke(main, ["iterate", str(write_config(tmp_path, tiny_model, **changes))])
        assert result.exit_code == 2 and message in result.stderr, (changes, result.stderr)
        assert not (tmp_path / "iterate").exists()


def test_the_shipped_recipe_is_a_valid_config():
    path = ROOT / "configs" / "recipes" / "iterate.yaml"
    config = IterateConfig.from_mapping(load_config_file(path), str(path))
    assert config.rounds >= 2 and config.train_config(2, "round-1-model").nll_weight > 0
    assert config.sample_spec(2).seed == config.sample_spec(1).seed + 1
