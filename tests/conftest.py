"""Shared test fixtures: nothing here is mocked.

Tests run offline: wandb in offline mode, the Hugging Face hub off. Models are
the tiny phi model built at run time (and loaded through `from_pretrained`).

The suite is a CPU suite: GPUs are hidden (CUDA_VISIBLE_DEVICES="", before torch
is imported, and in every subprocess through helpers.SUBPROCESS_ENV), so on a
CUDA machine it still runs in fp32 over gloo and compares bit-exactly. Tests that
need a GPU are marked ``gpu`` and run only as ``RISKDPO_TEST_GPU=1 python -m
pytest -m gpu``, which leaves the GPUs visible and runs nothing else.
"""

import os

import pytest

GPU_RUN = os.environ.get("RISKDPO_TEST_GPU") == "1"
if not GPU_RUN:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Tiny models on 2 shared cores: a second thread only spins (tens of times slower),
# and one thread keeps in-process runs comparable with the test subprocesses.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_inherited_wandb_service():
    """Each test starts without WANDB_SERVICE. A wandb run started inside the test process (the
    in-process training fixtures) leaves its service's address there, and every later
    subprocess would join that one long-lived service, which still holds the run id of a child
    killed by SIGKILL: the child's resumed run is then refused ("run ID ... is in use"). A
    user's `riskdpo train` starts its own service; so does each test's subprocess."""
    os.environ.pop("WANDB_SERVICE", None)


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests in the CPU suite, and everything else in a GPU run."""
    for item in items:
        if (item.get_closest_marker("gpu") is not None) != GPU_RUN:
            reason = "GPU run: only tests marked gpu" if GPU_RUN else "needs a GPU: RISKDPO_TEST_GPU=1 python -m pytest -m gpu"
            item.add_marker(pytest.mark.skip(reason=reason))
