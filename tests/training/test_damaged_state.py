"""Damaged run state: a checkpoint file truncated or missing, a checkpoint folder
emptied, every checkpoint damaged, a cached reference that is not one. The damaged
file is named; a resume falls back to the newest intact checkpoint (and still ends
exactly like an uninterrupted run); a damaged reference cache is recomputed."""

import os

import pytest
import torch

from helpers import final_weights, pairs_path, read_jsonl, run_cli, tiny_model  # noqa: F401
from riskdpo.training.metrics import without_timing
from training_runs import one_error_line, train_args, tree_digest


def newest_two(run):
    older, newest = sorted((run / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))
    return older, newest


def truncate(path):
    os.truncate(path, path.stat().st_size // 2)


DAMAGE = {
    "truncated": (lambda folder: truncate(folder / "pytorch_model.bin"), "pytorch_model.bin: damaged ("),
    "missing": (lambda folder: (folder / "optimizer.bin").unlink(), "optimizer.bin: missing from the checkpoint"),
    "emptied": (lambda folder: [path.unlink() for path in folder.iterdir()], "the checkpoint folder is empty"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_resume_falls_back_to_the_newest_intact_checkpoint(interrupted_copy, uninterrupted_run, tiny_model, pairs_path, kind):  # noqa: F811
    damage, named = DAMAGE[kind]
    older, newest = newest_two(interrupted_copy)
    damage(newest)
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if str(newest) in line]
    assert named in line and line.endswith(f"resuming from the earlier {older.name}")
    resumed, expected = final_weights(interrupted_copy), final_weights(uninterrupted_run)
    assert all(torch.equal(resumed[key], expected[key]) for key in expected)
    assert [without_timing(r) for r in read_jsonl(interrupted_copy / "metrics.jsonl")] == \
        [without_timing(r) for r in read_jsonl(uninterrupted_run / "metrics.jsonl")]


def test_no_intact_checkpoint_is_one_line_and_changes_nothing(interrupted_copy, tiny_model, pairs_path):  # noqa: F811
    older, newest = newest_two(interrupted_copy)
    truncate(older / "scheduler.bin")
    (newest / "progress.json").unlink()
    before = tree_digest(interrupted_copy)
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model), "--resume")
    assert result.returncode == 2
    one_error_line(result.stderr, "--resume: no intact checkpoint", str(older / "scheduler.bin"), "--overwrite")
    assert tree_digest(interrupted_copy) == before


def test_checkpoint_overwritten_in_place_is_named_and_kept(interrupted_copy, tiny_model, pairs_path):  # noqa: F811
    _, newest = newest_two(interrupted_copy)
    model_file = newest / "pytorch_model.bin"
    model_file.write_bytes(b"\0" * model_file.stat().st_size)  # right size, not a checkpoint
    before = tree_digest(interrupted_copy / "checkpoints")
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model), "--resume")
    assert result.returncode == 2
    one_error_line(result.stderr, f"{newest}: damaged checkpoint", "delete it to resume from an earlier one")
    assert tree_digest(interrupted_copy / "checkpoints") == before


@pytest.mark.parametrize("content", [b"", b"not a torch file", None], ids=["empty", "garbage", "truncated"])
def test_damaged_reference_cache_is_named_and_recomputed(interrupted_copy, uninterrupted_run, tiny_model, pairs_path, content):  # noqa: F811
    cache = interrupted_copy / "reference-logps.pt"
    if content is None:
        truncate(cache)
    else:
        cache.write_bytes(content)
    result = run_cli(*train_args(pairs_path, interrupted_copy, tiny_model), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if "reference-logps.pt" in line]
    assert line.startswith(f"{cache}: damaged (") and line.endswith("computing the reference log-probs again")
    recomputed, expected = torch.load(cache)["logps"], torch.load(uninterrupted_run / "reference-logps.pt")["logps"]
    assert recomputed.keys() == expected.keys() and all(torch.equal(recomputed[k], expected[k]) for k in expected)
    resumed, uninterrupted = final_weights(interrupted_copy), final_weights(uninterrupted_run)
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in uninterrupted)
