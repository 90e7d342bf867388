"""What every stage of the GPU suite shares: its context, the models it builds, small measuring helpers.

Stages use riskdpo like any user (its public functions and commands) and the
benchmark harness of ``benchmarks/`` (tables, targets, result files, the TRL
and baseline workers), so fixes to either reach the suite without edits here.

Models have random weights (seed 0) and a shape, never downloaded weights:

- the phi-2-shaped model (`phi2_model`): phi-2's config (or a tiny one in a
  dry run) with a real tokenizer, so prompts tokenize to realistic lengths:
  ``--tokenizer DIR`` (the carried SmolLM2 tokenizer, `carry.py`), else in a
  dry run the tiny model's tokenizer trained on the sample's pairs;
- the tiny test model of the benchmarks (`benchmarks/workloads.py`), for the
  correctness stage.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GPU_DIR = Path(__file__).resolve().parent
BENCH_DIR = GPU_DIR.parent
REPO_DIR = BENCH_DIR.parent
for _path in (str(REPO_DIR), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness import SectionResult, Table, Target, run_measured  # noqa: E402,F401  (re-exported for the stages)
from sizes import DRY, H200, Sizes  # noqa: E402


@dataclass(frozen=True)
class Context:
    """Where a stage reads and writes, how big it runs, on which device."""

    out: Path
    work: Path
    dry_run: bool
    device: str
    tokenizer: Path | None
    peak_tflops: float | None

    @property
    def sizes(self) -> Sizes:
        return DRY if self.dry_run else H200

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def to_json(self) -> dict:
        return {"out": str(self.out), "work": str(self.work), "dry_run": self.dry_run, "device": self.device,
                "tokenizer": str(self.tokenizer) if self.tokenizer else None, "peak_tflops": self.peak_tflops}

    @classmethod
    def from_json(cls, data: dict) -> "Context":
        return cls(Path(data["out"]), Path(data["work"]), data["dry_run"], data["device"],
                   Path(data["tokenizer"]) if data["tokenizer"] else None, data["peak_tflops"])


def bench_settings(ctx: Context, **overrides: Any) -> Any:
    """The benchmark harness's `Settings` for this context (device, work folder, all cores)."""
    from dataclasses import replace

    from settings import FULL

    return replace(FULL, mode="gpu-suite", work=ctx.work, device=ctx.device, cores=None, peak_tflops=ctx.peak_tflops,
                   **overrides)


def sample_tokenizer_texts(ctx: Context) -> list[Path]:
    """The sample's label and chain-of-thought pairs (built once with riskdpo's commands)."""
    from workloads import sample_pairs

    from settings import SAMPLE_WORKBOOK

    return [sample_pairs(ctx.work, SAMPLE_WORKBOOK, "label"), sample_pairs(ctx.work, SAMPLE_WORKBOOK, "cot")]


def tiny_model(ctx: Context) -> Path:
    """The benchmarks' tiny phi model (tokenizer trained on the sample's pairs)."""
    from workloads import sample_tiny_model

    from settings import SAMPLE_WORKBOOK

    return sample_tiny_model(ctx.work, SAMPLE_WORKBOOK)


def tokenizer_dir(ctx: Context) -> Path:
    """The tokenizer of the shaped models: ``--tokenizer``, else (dry run) the tiny model's."""
    if ctx.tokenizer is not None:
        return ctx.tokenizer
    if not ctx.dry_run:
        raise SystemExit("the H200 sizes need --tokenizer DIR (python benchmarks/gpu/carry.py writes .whl/tokenizer-smollm2)")
    return tiny_model(ctx)


def phi2_model(ctx: Context) -> Path:
    """The phi-2-shaped model with random weights, saved in bf16 (built once, in its own process)."""
    path = ctx.work / f"phi2-shaped-{ctx.sizes.name}"
    if not (path / "config.json").exists():
        command = [sys.executable, str(GPU_DIR / "common.py"), "build-phi2", str(path), str(tokenizer_dir(ctx)),
                   json.dumps(ctx.sizes.phi2), ctx.device]
        run_measured(command)
    return path


def build_phi2(path: Path, tokenizer_path: Path, shape: dict, device: str) -> None:
    import torch
    from transformers import AutoTokenizer, PhiConfig, PhiForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    shape = dict(shape, vocab_size=max(shape["vocab_size"], len(tokenizer)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = PhiConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=pad, resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    with torch.device(device):
        model = PhiForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """(function's result, its seconds), the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - start


def relative_error(value: Any, reference: Any) -> float:
    """||value - reference|| / ||reference|| in fp64 (METHOD.md's measure)."""
    value, reference = value.double(), reference.double()
    return float((value - reference).norm() / reference.norm().clamp_min(1e-300))


def check(name: str, passed: bool, detail: str) -> list:
    """A row of a checks table: what, pass/FAIL, the measured numbers."""
    return [name, "pass" if passed else "FAIL", detail]


CHECK_COLUMNS = ["Check", "Result", "Measured (tolerance)"]


def env_for_children(ctx: Context) -> None:
    """Children of a stage find riskdpo and the harness; the CPU dry run hides any GPU."""
    paths = [str(REPO_DIR), str(BENCH_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


if __name__ == "__main__":
    if sys.argv[1:2] == ["build-phi2"]:
        build_phi2(Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5])
