"""Where a run's output goes, and options that used to reach libraries: an output
path that is a file, sits under one or cannot be written; an unknown LoRA target;
a local model folder that does not exist; a pairs "file" that is a folder. Each is
one line naming the problem, exit status 2, nothing written."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import pairs_path, tiny_model  # noqa: F401
from riskdpo.cli import main
from riskdpo.training.preflight import check_lora_targets
from training_runs import one_error_line


def invoke(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def refused(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    return one_error_line(result.stderr, *fragments)


def test_output_dir_that_is_a_file_is_refused_and_kept(tiny_model, pairs_path, tmp_path):  # noqa: F811
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    refused(invoke("--dataset", str(pairs_path), "--output-dir", str(target), "--model", str(tiny_model)),
            f"--output-dir {target}: is a file, not a folder")
    assert target.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_output_dir_under_a_file_is_refused(tiny_model, pairs_path, tmp_path):  # noqa: F811
    (tmp_path / "notes.txt").write_text("keep me")
    out = tmp_path / "notes.txt" / "run" / "deeper"
    refused(invoke("--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model)),
            f"{tmp_path / 'notes.txt'} is a file, so no folder can be made under it")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's read-only /sys")
def test_output_dir_where_nothing_can_be_made_is_refused(tiny_model, pairs_path):  # noqa: F811
    out = Path("/sys/riskdpo-run/inner")
    refused(invoke("--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model)),
            f"--output-dir {out}: cannot create /sys/riskdpo-run")
    assert not out.parent.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_dir_in_a_read_only_folder_is_refused(tiny_model, pairs_path, tmp_path):  # noqa: F811
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        refused(invoke("--dataset", str(pairs_path), "--output-dir", str(locked / "run"), "--model", str(tiny_model)),
                f"cannot write in {locked} (permission denied)")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("targets, named", [
    ("q_proj,no_such_proj", "--lora-targets no_such_proj: {model} has no module of that name (its linear modules: "),
    ("layers", "--lora-targets layers: in {model} it is a ModuleList, not a layer LoRA can adapt"),
])
def test_unknown_lora_target_is_named_before_anything_is_written(tiny_model, pairs_path, tmp_path, targets, named):  # noqa: F811
    out = tmp_path / "run"
    line = refused(invoke("--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model),
                          "--lora-targets", targets), named.format(model=tiny_model))
    assert "q_proj" in line  # the modules it could have named
    assert not out.exists()


def test_lora_targets_the_model_has_pass_the_check(tiny_model):  # noqa: F811
    check_lora_targets(str(tiny_model), "q_proj, self_attn.v_proj,fc1", trust_remote_code=False)


@pytest.mark.parametrize("model, named", [
    ("{tmp}/no/such/model", "--model {tmp}/no/such/model: no such model folder"),
    ("./no-such-model-folder", "--model ./no-such-model-folder: no such model folder"),
    ("{pairs}", "--model {pairs}: is a file"),
])
def test_missing_local_model_is_named_as_a_folder_not_a_repo_id(pairs_path, tmp_path, model, named):  # noqa: F811
    out = tmp_path / "run"
    values = {"tmp": tmp_path, "pairs": pairs_path}
    line = refused(invoke("--dataset", str(pairs_path), "--output-dir", str(out), "--model", model.format(**values)),
                   named.format(**values))
    assert "repo" not in line.lower()
    assert not out.exists()


def test_dataset_that_is_a_folder_is_named_so(tiny_model, tmp_path):  # noqa: F811
    (tmp_path / "pairs.jsonl").mkdir()
    out = tmp_path / "run"
    refused(invoke("--dataset", str(tmp_path / "pairs.jsonl"), "--output-dir", str(out), "--model", str(tiny_model)),
            f"{tmp_path / 'pairs.jsonl'}: is a directory, not a pairs file")
    assert not out.exists()
