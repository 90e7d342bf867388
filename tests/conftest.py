"""Shared test fixtures: nothing here is mocked.

Tests run offline: wandb in offline mode, the Hugging Face hub off. Models are
the tiny phi model built at run time (and loaded through `from_pretrained`).
"""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Tiny models on 2 shared cores: a second thread only spins (tens of times slower),
# and one thread keeps in-process runs comparable with the test subprocesses.
torch.set_num_threads(1)
