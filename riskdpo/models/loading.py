"""Loading models and tokenizers by hub id, local directory or short name.

Everything goes through `AutoModelForCausalLM.from_pretrained` /
`AutoTokenizer.from_pretrained`, so a hub id such as ``microsoft/phi-2`` and a
local directory behave the same. Short names map to models this package can
provide offline (see `MODEL_ALIASES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.errors import UserError

#: Short model names users may pass to --model, resolved by `resolve_model`.
MODEL_ALIASES = ("smollm2-135m",)

_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def looks_local(name: str) -> bool:
    """Whether `name` can only be a path: hub ids are `name` or `owner/name`."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def check_model_path(name: str) -> None:
    """A --model that names a local path must be a folder that exists, and not a
    training run's folder (its model is the run's final-model/).

    Checked by `load_tokenizer` and `load_model` (and by train before it writes
    anything) before the hub client sees the name, which would call a missing
    folder an invalid repo id.
    """
    if name in MODEL_ALIASES:
        return
    path = Path(name).expanduser()
    if path.is_file():
        raise UserError(f"--model {name}: is a file; give the model's folder, a hub id or a short name")
    if looks_local(name) and not path.exists():
        raise UserError(f"--model {name}: no such model folder")
    if path.is_dir() and (path / "run.json").is_file() and not (path / "config.json").exists():
        final = path / "final-model"
        found = f"its model is {final}" if final.is_dir() else f"it holds no {final.name} yet (the run did not finish)"
        raise UserError(f"--model {name}: is a riskdpo train run folder, not a model; {found}")


def resolve_model(name: str) -> str:
    """Turn a short name into a loadable path; pass hub ids and directories through."""
    if name == "smollm2-135m":
        from riskdpo.models.smollm import smollm2_dir

        return str(smollm2_dir())
    return name


def resolve_precision(precision: str, device: str, stored: str | None = None) -> str:
    """`auto` -> `auto_precision` for the device and the weights' stored precision
    (`stored_precision`; pass it where rounding the weights matters, as in evaluation).
    Others pass through."""
    if precision not in ("auto", *_DTYPES):
        raise UserError(f"--precision {precision}: choose auto, bf16, fp16 or fp32")
    if precision != "auto":
        if precision == "fp16" and device == "cpu":
            raise UserError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
        return precision
    gpu = device.startswith("cuda")
    return auto_precision(gpu, native_bf16=gpu and native_bf16_support(), stored=stored)


def auto_precision(gpu: bool, *, native_bf16: bool, stored: str | None = None) -> str:
    """What `--precision auto` means on a device.

    bf16 on a GPU whose tensor cores compute it (compute capability 8.0 and
    later: A100, H100, RTX 30xx on). On older GPUs (T4, V100) bf16 exists only
    as emulation, several times slower than fp16, so fp16 instead: the trainer
    then runs under fp16 autocast with a dynamic loss scaler (accelerate's
    GradScaler), which keeps small gradients from flushing to zero. On the CPU,
    fp32. Weights `stored` in fp32 stay fp32: riskdpo stores a merged LoRA model
    in fp32 because its update is mostly below bf16's resolution of the weights
    (`riskdpo.training.lora`), and loading it in bf16 would round the update away.
    """
    if not gpu or stored == "fp32":
        return "fp32"
    return "bf16" if native_bf16 else "fp16"


def shared_precision(precision: str, device: str, stored: Sequence[str | None]) -> str:
    """The one precision every model of an evaluation is scored in, so that a difference
    between models is their training's, not their precision's.

    An explicit `precision` is used for all. `auto` is `auto_precision` for the
    device and the models' stored precisions together: fp32 on the CPU; on a GPU
    fp32 when any model is stored in fp32 (a merged riskdpo model, whose update
    bf16 would round away: the base is then scored in fp32 too), else bf16 (fp16
    where the GPU lacks native bf16). A base and its LoRA adapter (scored unmerged)
    share the base's stored precision, so they are compared in bf16 on a GPU.
    """
    return resolve_precision(precision, device, "fp32" if "fp32" in stored else None)


def stored_precision(name: str) -> str | None:
    """The precision a model's weights are stored in (its config's dtype), when it says."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError):
        return None  # load_model reports an unreadable model
    dtype = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "").replace("torch.", "")
    return {full: short for short, full in _DTYPES.items()}.get(dtype)


def native_bf16_support() -> bool:
    """Whether the current CUDA device computes bf16 natively (emulation does not count)."""
    import torch

    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no including_emulation: native means compute capability >= 8.0
        return torch.cuda.get_device_capability()[0] >= 8


def torch_dtype(precision: str):
    """The torch dtype for a precision name (bf16, fp16, fp32)."""
    import torch

    return getattr(torch, _DTYPES[precision])


#: Files one of which a local model directory needs to hold a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer; give it a pad token (EOS) when it has none.

    A local directory without tokenizer files is an error here: transformers
    would otherwise hand back an empty tokenizer that encodes every text as [].
    """
    from transformers import AutoTokenizer

    check_model_path(name)
    path = resolve_model(name)
    if Path(path).is_dir() and not any((Path(path) / file).exists() for file in TOKENIZER_FILES):
        raise UserError(f"{name}: the model directory has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise UserError(f"{name}: cannot load a tokenizer ({_first_line(error)})") from None
    if tokenizer.eos_token is None:
        raise UserError(f"{name}: the tokenizer has no EOS token, which completions need")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


#: Activation functions with the same values and a lighter backward pass. transformers'
#: ``gelu_new`` (phi-2's) writes the tanh-approximated GELU out in Python ops, which keep
#: four tensors of the MLP's width for the backward pass; PyTorch's fused
#: ``gelu(approximate="tanh")`` computes the same formula and keeps only its input.
EQUIVALENT_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}


def load_model(name: str, *, precision: str = "fp32", trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """Load a causal LM in `precision` (bf16, fp16 or fp32), with the lightest equivalent
    activation function (`EQUIVALENT_ACTIVATIONS`; not for models with remote code)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    check_model_path(name)
    path = resolve_model(name)
    try:
        if not trust_remote_code and "config" not in kwargs:
            config = AutoConfig.from_pretrained(path)
            lighter = EQUIVALENT_ACTIVATIONS.get(getattr(config, "hidden_act", None))
            if lighter:
                config.hidden_act = lighter
            kwargs["config"] = config
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(precision), trust_remote_code=trust_remote_code, **kwargs
        )
    except (OSError, ValueError) as error:
        raise UserError(f"{name}: cannot load a causal language model ({_first_line(error)})") from None


def hide_loading_bars() -> None:
    """Stop transformers drawing its weight-loading and saving bars, for the rest of the process
    (what --no-progress asks for beyond riskdpo's own bars)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def default_device() -> str:
    """`cuda` when a GPU is visible, else `cpu`."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
