"""The inputs the benchmarks run on, built once with riskdpo's own commands and cached.

Everything is deterministic (fixed seeds), so a cached file is the file a fresh
build would give; the cache lives in the work directory (``--work``, default
``benchmarks/.work``) and is reused across runs. Nothing built here is timed.

- generated workbooks: ``riskdpo generate`` (layout 1, one row per option);
- situations: ``riskdpo convert``; pairs: ``riskdpo make-pairs``;
- the training pairs of the train section come from the bundled sample in
  ``data/`` (its ``train`` sheet for label completions, its ``train_cot``
  sheet with ``--response cot`` for chain-of-thought completions);
- models: the tiny phi model (`riskdpo.models.tiny.build_tiny_model`, tokenizer
  trained on the pairs' text), the bundled SmolLM2-135M-Instruct
  (`riskdpo.models.loading.resolve_model`), and a phi-2-shaped model with random
  weights for GPU runs (`phi2_shaped_model`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from riskdpo.core.fileio import read_records

from harness import REPO_DIR, BenchmarkError, benchmark_env, riskdpo_command

LABEL_SHEET = "train"
COT_SHEET = "train_cot"

#: phi-2's shape (its config.json on the hub), for GPU benchmarks without its weights.
PHI2_SHAPE = dict(
    hidden_size=2560,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    intermediate_size=10240,
    vocab_size=51200,
    partial_rotary_factor=0.4,
    max_position_embeddings=2048,
)


def run_quietly(command: list[str]) -> None:
    """Run an input-building command; raise `BenchmarkError` with its stderr when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, env=benchmark_env(), cwd=REPO_DIR)
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr.strip()[-2000:]}")


def generated_workbook(work: Path, situations: int, seed: int) -> Path:
    """An .xlsx of `situations` generated situations (cached by size and seed)."""
    path = work / f"generated-{situations}-seed{seed}.xlsx"
    if not path.exists():
        run_quietly(riskdpo_command("generate", "-o", path, "--situations", situations, "--seed", seed))
    return path


def situations_file(work: Path, workbook: Path, sheet: str | None = None) -> Path:
    """situations.json of `workbook` (one sheet or all), cached beside the other inputs."""
    path = work / f"{workbook.stem}{'-' + sheet if sheet else ''}.situations.json"
    if not path.exists():
        run_quietly(riskdpo_command("convert", workbook, "-o", path, *(["--sheet", sheet] if sheet else [])))
    return path


def pairs_file(work: Path, situations: Path, response: str = "label") -> Path:
    """pairs.jsonl made from `situations` with completions of kind `response` (label or cot)."""
    path = work / f"{situations.name.removesuffix('.situations.json')}-{response}.pairs.jsonl"
    if not path.exists():
        run_quietly(riskdpo_command("make-pairs", situations, "-o", path, "--response", response))
    return path


def sample_pairs(work: Path, sample: Path, response: str) -> Path:
    """Training pairs of the sample workbook: label completions (train sheet) or chain-of-thought (train_cot)."""
    sheet = COT_SHEET if response == "cot" else LABEL_SHEET
    return pairs_file(work, situations_file(work, sample, sheet), response)


def tiny_model(work: Path, texts_from: list[Path]) -> Path:
    """The tiny phi model, its tokenizer trained on the prompts and completions of `texts_from`."""
    from riskdpo.models.tiny import build_tiny_model

    path = work / "tiny-phi"
    if not (path / "config.json").exists():
        texts = [text for source in texts_from for pair in read_records(source) for text in (pair["prompt"], pair["chosen"], pair["rejected"])]
        build_tiny_model(path, texts, seed=0)
    return path


def sample_tiny_model(work: Path, sample: Path) -> Path:
    """The tiny model of every benchmark: its tokenizer trained on the sample's label and chain-of-thought pairs."""
    return tiny_model(work, [sample_pairs(work, sample, "label"), sample_pairs(work, sample, "cot")])


def smollm2() -> Path:
    """The bundled SmolLM2-135M-Instruct, converted once to a model directory."""
    from riskdpo.models.loading import resolve_model

    return Path(resolve_model("smollm2-135m"))


def phi2_shaped_model(work: Path, device: str) -> Path:
    """A model with phi-2's shape and random weights (seed 0), saved in bf16.

    Built in a separate process, so that this process holds no GPU memory
    while the measured ones run.
    """
    path = work / "phi2-shaped"
    if not (path / "config.json").exists():
        run_quietly([sys.executable, __file__, "phi2-shaped", str(path), device])
    return path


def build_phi2_shaped(path: Path, device: str) -> None:
    """Build and save the phi-2-shaped model on `device`.

    Its tokenizer is SmolLM2's byte-level BPE (49,152 tokens, below phi-2's
    51,200 embedding rows), so prompts tokenize to realistic lengths.
    """
    import torch
    from transformers import AutoTokenizer, PhiConfig, PhiForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2())
    config = PhiConfig(
        **PHI2_SHAPE,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = PhiForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["phi2-shaped"]:
        build_phi2_shaped(Path(sys.argv[2]), sys.argv[3])
