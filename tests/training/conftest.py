"""Fixtures of the run-directory tests: one run stopped by SIGTERM after two
checkpoints, and the same run uninterrupted, each made once per session; tests
work on copies."""

import shutil
import signal

import pytest

from helpers import pairs_path, tiny_model  # noqa: F401
from training_runs import OPTIONS, signal_after_checkpoints, train_args


@pytest.fixture(scope="session")
def terminated_run(tiny_model, pairs_path, tmp_path_factory):  # noqa: F811
    """(folder, exit status, stderr, newest checkpoint's step) of a run stopped by SIGTERM."""
    out = tmp_path_factory.mktemp("terminated") / "run"
    status, stderr, newest = signal_after_checkpoints(train_args(pairs_path, out, tiny_model), out, signal.SIGTERM)
    return out, status, stderr, newest


@pytest.fixture(scope="session")
def uninterrupted_run(tiny_model, pairs_path, tmp_path_factory):  # noqa: F811
    from riskdpo.training.config import TrainConfig
    from riskdpo.training.run import train

    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    train(TrainConfig(dataset=str(pairs_path), val=str(pairs_path), output_dir=str(out), model=str(tiny_model),
                      progress=False, **OPTIONS))
    return out


@pytest.fixture
def interrupted_copy(terminated_run, tmp_path):
    """A copy of the terminated run to resume or damage."""
    copy = tmp_path / "run"
    shutil.copytree(terminated_run[0], copy)
    return copy
