"""Issue 27, part 4: `riskdpo iterate --resume` continues a recipe: the rounds
rounds.json lists as finished are kept, not redone, and rounds.json says which
rounds finished. A resume with other settings, or without a recipe to continue,
is refused with one line; a folder with files is refused without --resume."""

from __future__ import annotations

import json

from click.testing import CliRunner

from helpers import tiny_model  # noqa: F401 (fixture)
from riskdpo.cli import main
from test_iterate import SAMPLE, write_config

import yaml


def digests(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_resume_keeps_the_finished_round_and_runs_the_next(tiny_model, tmp_path):  # noqa: F811
    config = write_config(tmp_path, tiny_model)
    out = tmp_path / "iterate"
    first = CliRunner().invoke(main, ["iterate", str(config), "--rounds", "1"])
    assert first.exit_code == 0, first.output
    record = json.loads((out / "rounds.json").read_text())
    assert record["finished"] == [1] and record["running"] is None
    assert [r["status"] for r in record["rounds"]] == ["finished"]
    round_one = digests(out / "round-1")

    refused = CliRunner().invoke(main, ["iterate", str(config), "--rounds", "2"])
    assert refused.exit_code == 2 and "--resume continues the recipe" in refused.stderr

    resumed = CliRunner().invoke(main, ["iterate", str(config), "--rounds", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "round 1: finished before, kept" in resumed.output
    assert "round 1: pairs written" not in resumed.output and "round 2: pairs written" in resumed.output
    assert digests(out / "round-1") == round_one  # not redone: every file as the first run left it
    record = json.loads((out / "rounds.json").read_text())
    assert record["finished"] == [1, 2] and record["running"] is None
    round_two = json.loads((out / "round-2" / "train" / "run.json").read_text())
    assert round_two["config"]["model"] == str(out / "round-1" / "train" / "final-model")
    assert resumed.stdout.strip().splitlines()[-1].startswith("2 rounds done")


def test_resume_with_other_settings_or_nothing_to_continue_is_refused(tiny_model, tmp_path):  # noqa: F811
    config = write_config(tmp_path, tiny_model)
    nothing = CliRunner().invoke(main, ["iterate", str(config), "--resume"])
    assert nothing.exit_code == 2 and "rounds.json is missing" in nothing.stderr
    out = tmp_path / "iterate"
    out.mkdir()
    (out / "rounds.json").write_text(json.dumps({"recipe": "0" * 64, "finished": [1], "rounds": []}))
    settings = yaml.safe_load(config.read_text())
    settings["sample"] = {**SAMPLE, "seed": 4}
    config.write_text(yaml.safe_dump(settings))
    other = CliRunner().invoke(main, ["iterate", str(config), "--resume"])
    assert other.exit_code == 2 and "written by a recipe with other settings" in other.stderr
