"""`--resume` continues the same run or refuses: any setting that changes the
result (the pair files' content, --lr, --beta, --model, ...) is named in one line
with exit status 2 and the run folder untouched; settings that cannot change the
result (--no-progress, --save-every, --keep-checkpoints) may differ."""

import json
import shutil

import pytest

from helpers import choice_pairs, pairs_path, run_cli, tiny_model, write_pairs  # noqa: F401
from riskdpo.training.config import RESULT_FREE_SETTINGS
from riskdpo.training.run_dir import settings_fingerprint, settings_record
from training_runs import one_error_line, train_args, tree_digest


def test_run_json_records_the_fingerprint_of_the_result_settings(terminated_run):
    out = terminated_run[0]
    run = json.loads((out / "run.json").read_text())
    settings = settings_record(run["config"], run["dataset"]["sha256"], run["val"]["sha256"])
    assert run["settings_fingerprint"] == settings_fingerprint(settings)
    assert not set(RESULT_FREE_SETTINGS) & set(settings) and settings["dataset"] == run["dataset"]["sha256"]
    assert settings_fingerprint({**settings, "lr": settings["lr"] * 2}) != run["settings_fingerprint"]


@pytest.mark.parametrize("changes, named", [
    ({"lr": 0.01}, ["--lr 0.005 now 0.01"]),
    ({"beta": 0.1, "seed": 4}, ["--beta 0.5 now 0.1", "--seed 3 now 4"]),
    ({"log_every": 2}, ["--log-every 3 now 2"]),
])
def test_resume_with_other_settings_is_refused_and_changes_nothing(interrupted_copy, tiny_model, pairs_path, changes, named):  # noqa: F811
    before = tree_digest(interrupted_copy)
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model, **changes), "--resume")
    assert result.returncode == 2
    one_error_line(result.stderr, "--resume:", str(interrupted_copy), "other settings", *named)
    assert tree_digest(interrupted_copy) == before


def test_resume_with_other_pairs_under_the_same_name_is_refused(interrupted_copy, tiny_model, pairs_path, tmp_path):  # noqa: F811
    moved = tmp_path / "elsewhere" / pairs_path.name
    moved.parent.mkdir()
    write_pairs(moved, choice_pairs()[:-1])  # one pair fewer
    before = tree_digest(interrupted_copy)
    args = train_args(pairs_path, interrupted_copy, tiny_model)
    args[args.index("--dataset") + 1] = str(moved)
    result = run_cli(*args, "--resume")
    assert result.returncode == 2
    one_error_line(result.stderr, "--dataset content sha256")
    assert tree_digest(interrupted_copy) == before


def test_resume_with_the_same_pairs_at_another_path_and_other_display_settings_runs(interrupted_copy, tiny_model, pairs_path, tmp_path):  # noqa: F811
    copied = shutil.copy(pairs_path, tmp_path / "copied.jsonl")
    args = train_args(copied, interrupted_copy, tiny_model, save_every=8, keep_checkpoints=1)
    result = run_cli(*args, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((interrupted_copy / "run.json").read_text())["status"] == "finished"
    assert sorted(p.name for p in (interrupted_copy / "checkpoints").iterdir()) == ["step-48"]


def test_resume_without_a_readable_run_json_is_refused(interrupted_copy, tiny_model, pairs_path):  # noqa: F811
    (interrupted_copy / "run.json").write_text("{")
    before = tree_digest(interrupted_copy)
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model), "--resume")
    assert result.returncode == 2
    one_error_line(result.stderr, "run.json is missing or unreadable")
    assert tree_digest(interrupted_copy) == before
