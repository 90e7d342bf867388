"""Training section: `riskdpo train` against TRL's `DPOTrainer`, side by side on the same work.

Same pairs, model, LoRA settings, batch size, max length, learning rate and
schedule, seed, number of steps and objective (sigmoid DPO, same beta) on both
sides; each side runs in its own process (`riskdpo_train.py`,
`baseline_train.py`) pinned to ``--cores`` CPUs. The pairs file of a row holds
exactly steps x batch pairs (the bundled sample's pairs, cycled), so both
trainers take one epoch over the same pairs, each in its own order (riskdpo
groups pairs of similar length; TRL samples at random).

Measured per side:

- pairs/s: pairs of the steady-state steps (after ``warmup`` steps) divided
  by their time. One-time costs (imports, model load, tokenisation, the
  reference log-prob precompute, saving) are excluded and shown as a separate
  column (process wall time minus the time of all training steps);
- tokens/s: pairs/s x the mean *pair tokens* of the pairs file (prompt once +
  chosen + rejected, each completion with its EOS), the same count for both
  sides, so it measures the same work;
- model tokens per pair: what each trainer runs through the model. riskdpo
  packs the prompt and both completions into one sequence (P + C_c + C_r);
  TRL runs prompt+chosen and prompt+rejected (2P + C_c + C_r). Their ratio is
  the work riskdpo's shared prompt saves, the structural part of any speed-up;
- peak memory: on the CPU the process's peak RSS (``ru_maxrss``); on a GPU
  ``torch.cuda.max_memory_allocated``;
- loss: at step 1 (ln 2 = 0.693 for both, the policy starting as its own
  reference) and the mean of the last quarter of the steps;
- MFU (GPU, full fine-tuning): 6 (N_b T + N_h T_h) / peak FLOPs, counting what
  runs: N_b the parameters of the transformer blocks (and final norm), run on
  every model token (T per second), N_h the output head's, run only where
  logits are computed (T_h per second: riskdpo's completion positions, every
  position for TRL); forward 2 and backward 4 FLOPs per parameter and token;
  attention-score FLOPs are left out, so MFU is slightly understated; peak is
  the GPU's dense bf16 peak.
- memory targets (GPU): riskdpo's peak at most 0.6x TRL's with LoRA (where
  activations dominate) and 0.9x with full fine-tuning (where weights,
  gradients and AdamW state, the same on both sides, dominate).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path

from riskdpo.core.fileio import read_records, write_jsonl

from harness import MIB, SectionResult, Table, Target, gpu_description, ratio, read_json, run_measured, script_command
from settings import Settings
from workloads import phi2_shaped_model, sample_pairs, sample_tiny_model, smollm2

LABEL_SPEEDUP = 2.0
COT_SPEEDUP = 1.3
GPU_MEMORY_RATIO = {"lora": 0.6, "full": 0.9}
MFU_TARGET = 0.40

#: Dense bf16 tensor-core peak, TFLOP/s, by a fragment of the GPU's name (first match wins).
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0))


def train_model(settings: Settings, name: str) -> Path:
    """The model directory for a short benchmark name (tiny, smollm2, phi2)."""
    if name == "tiny":
        return sample_tiny_model(settings.work, settings.sample)
    if name == "smollm2":
        return smollm2()
    return phi2_shaped_model(settings.work, settings.device)


def exact_pairs(settings: Settings, completions: str, count: int) -> Path:
    """A pairs file of exactly `count` pairs: the sample's pairs, cycled."""
    path = settings.work / f"train-{completions}-{count}.pairs.jsonl"
    if not path.exists():
        pairs = list(itertools.islice(itertools.cycle(read_records(sample_pairs(settings.work, settings.sample, completions))), count))
        write_jsonl(path, pairs)
    return path


def token_counts(model: Path, pairs_path: Path, prompt_format: dict, max_length: int) -> dict:
    """Mean prompt and completion tokens per pair, as riskdpo tokenizes them (max_length applied)."""
    from riskdpo.models.loading import load_tokenizer
    from riskdpo.pairs.prompting import PromptFormat
    from riskdpo.training.pair_data import tokenize_pairs

    tokenizer = load_tokenizer(str(model))
    data = tokenize_pairs(tokenizer, read_records(pairs_path), PromptFormat(**prompt_format), max_length)
    prompt = statistics.mean(len(p) for p, _ in data.groups)
    completions = statistics.mean(sum(map(len, c)) for _, c in data.groups)
    return {
        "prompt": prompt,
        "completions": completions,
        "pair": prompt + completions,
        "riskdpo_model": prompt + completions,
        "trl_model": 2 * prompt + completions,
        # positions the output head runs on: riskdpo's completion positions, TRL's every position
        "riskdpo_head": completions,
        "trl_head": 2 * prompt + completions,
        "longest": max(data.lengths),
        "truncated": data.truncated,
    }


def head_and_block_parameters(model: Path) -> tuple[int, int]:
    """(N_h, N_b): parameters of the output head, and of everything else but the input embedding
    (counted on the meta device; a head tied to the embedding counts as the head)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model))
    head = sum(p.numel() for p in skeleton.get_output_embeddings().parameters())
    embedding = skeleton.get_input_embeddings().weight
    tied = embedding is skeleton.get_output_embeddings().weight
    total = sum(p.numel() for p in skeleton.parameters())
    return head, total - head - (0 if tied else embedding.numel())


def mfu(block_parameters: int, head_parameters: int, model_tokens_per_s: float, head_tokens_per_s: float,
        flops: float) -> float:
    """Model FLOPs utilisation, counting the head only where it runs (see the module docstring)."""
    return 6 * (block_parameters * model_tokens_per_s + head_parameters * head_tokens_per_s) / flops


def static_memory_mib(model: Path, finetune: str, precision: str, lora_r: int) -> float:
    """riskdpo's weights, gradients and AdamW state (`riskdpo.training.memory`), about the same for TRL."""
    from transformers import AutoConfig

    from riskdpo.training.memory import estimate_memory

    estimate = estimate_memory(AutoConfig.from_pretrained(model), mode="full" if finetune == "full" else "lora",
                               precision=precision, lora_rank=lora_r)
    return (estimate.weights + estimate.gradients + estimate.optimizer) / MIB


def peak_flops(settings: Settings) -> float | None:
    """The GPU's dense bf16 peak in FLOP/s (``--peak-tflops`` wins), None on the CPU or an unknown GPU."""
    if settings.peak_tflops:
        return settings.peak_tflops * 1e12
    if not settings.device.startswith("cuda"):
        return None
    name, _ = gpu_description()
    return next((tflops * 1e12 for fragment, tflops in PEAK_BF16_TFLOPS if fragment in name), None)


def worker_args(settings: Settings, model: Path, pairs: Path, finetune: str, *, steps: int, batch: int, max_length: int) -> list:
    args = [
        "--model", model, "--pairs", pairs, "--steps", steps, "--batch-size", batch, "--max-length", max_length,
        "--lr", settings.learning_rate, "--beta", settings.beta, "--seed", settings.seed, "--finetune", finetune,
        "--lora-r", settings.lora_r, "--lora-alpha", settings.lora_alpha,
        "--device", settings.device,
    ]
    return [str(arg) for arg in args]


def run_side(settings: Settings, script: str, args: list, out: Path, extra: tuple = ()) -> dict:
    measured = run_measured(script_command(script, *args, "--out", out, *extra), cores=settings.cores)
    return {**read_json(out), "process_wall_s": measured.wall_s, "peak_rss_mib": measured.peak_rss_mib}


def summarize(side: dict, warmup: int, batch: int, tokens: dict, model_tokens: float) -> dict:
    """Steady-state throughput, memory, losses and one-time cost of one side's run."""
    steady = side["step_seconds"][warmup:]
    pairs_per_s = len(steady) * batch / sum(steady)
    losses = [loss for loss in side["losses"] if loss is not None]
    tail = losses[-max(1, math.ceil(len(losses) / 4)) :]
    peak_gpu = side.get("peak_gpu_bytes")
    return {
        "pairs_per_s": pairs_per_s,
        "tokens_per_s": pairs_per_s * tokens["pair"],
        "model_tokens_per_s": pairs_per_s * model_tokens,
        "step_s": statistics.median(steady),
        "peak_memory_mib": peak_gpu / MIB if peak_gpu else side["peak_rss_mib"],
        "loss_first": losses[0] if losses else None,
        "loss_last_quarter": statistics.mean(tail) if tail else None,
        "one_time_s": side["process_wall_s"] - sum(side["step_seconds"]),
        "steps": side["steps"],
    }


def compare(settings: Settings, model_name: str, completions: str, finetune: str, model: Path | None = None) -> dict:
    """Both trainers on one (model, completions, fine-tuning) configuration (`model`: a directory that
    replaces the one `model_name` names, e.g. the GPU suite's phi-2-shaped model with its own tokenizer)."""
    batch, steps = settings.train_batch_size, settings.train_steps
    model = model or train_model(settings, model_name)
    pairs = exact_pairs(settings, completions, steps * batch)
    args = worker_args(settings, model, pairs, finetune, steps=steps, batch=batch, max_length=settings.max_length)
    tag = f"{model_name}-{completions}-{finetune}"
    ours = run_side(settings, "riskdpo_train.py", args, settings.work / f"train-riskdpo-{tag}.json")
    fmt = json.dumps(ours["prompt_format"])
    theirs = run_side(settings, "baseline_train.py", args, settings.work / f"train-trl-{tag}.json", ("--prompt-format", fmt))
    tokens = token_counts(model, pairs, ours["prompt_format"], settings.max_length)
    result = {
        "model": model_name,
        "completions": completions,
        "finetune": finetune,
        "tokens": tokens,
        "riskdpo": summarize(ours, settings.warmup_steps, batch, tokens, tokens["riskdpo_model"]),
        "trl": summarize(theirs, settings.warmup_steps, batch, tokens, tokens["trl_model"]),
        "raw": {"riskdpo": ours, "trl": theirs},
    }
    if settings.device.startswith("cuda"):
        result["static_memory_mib"] = static_memory_mib(model, finetune, ours["precision"], settings.lora_r)
    flops = peak_flops(settings)
    if flops and finetune == "full":
        head, blocks = head_and_block_parameters(model)
        for side in ("riskdpo", "trl"):
            head_tokens_per_s = result[side]["pairs_per_s"] * tokens[f"{side}_head"]
            result[side]["mfu"] = mfu(blocks, head, result[side]["model_tokens_per_s"], head_tokens_per_s, flops)
        result["parameters"] = {"blocks": blocks, "head": head}
    return result


def train_section(settings: Settings) -> SectionResult:
    results = [
        compare(settings, model, completions, finetune)
        for model in settings.train_models
        for completions in settings.completions
        for finetune in settings.finetune_modes
    ]
    return train_result(settings, results)


def train_result(settings: Settings, results: list[dict]) -> SectionResult:
    """The section's tables and targets from `compare`'s results."""
    gpu = settings.device.startswith("cuda")
    memory = "Peak GPU MiB" if gpu else "Peak RSS MiB"
    speed_rows, memory_rows = [], []
    for result in results:
        config = [result["model"], result["completions"], result["finetune"]]
        speedup = ratio(result["riskdpo"]["pairs_per_s"], result["trl"]["pairs_per_s"])
        memory_ratio = ratio(result["riskdpo"]["peak_memory_mib"], result["trl"]["peak_memory_mib"])
        for side, name in (("trl", "TRL DPOTrainer"), ("riskdpo", "riskdpo train")):
            numbers = result[side]
            ours = side == "riskdpo"
            speed_rows.append(
                config
                + [name, numbers["pairs_per_s"], numbers["tokens_per_s"], speedup if ours else None]
                + [result["tokens"][f"{side}_model"], numbers["one_time_s"], numbers.get("mfu")]
            )
            memory_rows.append(
                config
                + [name, numbers["peak_memory_mib"], memory_ratio if ours else None]
                + [numbers["loss_first"], numbers["loss_last_quarter"]]
            )
    batch = settings.train_batch_size
    setup = (
        f"{settings.train_steps} steps of batch {batch}, max length {settings.max_length}, lr {settings.learning_rate:g} "
        f"linear to 0, beta {settings.beta}, LoRA r={settings.lora_r} alpha={settings.lora_alpha} on all linear layers, "
        f"seed {settings.seed}; TRL with precompute_ref_log_probs=True. Ratios are riskdpo over TRL."
    )
    table = Table(
        title=f"Training throughput: riskdpo train vs TRL DPOTrainer ({settings.device})",
        columns=["Model", "Completions", "Fine-tuning", "Trainer", "Pairs/s", "Tokens/s", "Speed-up", "Model tokens/pair", "One-time s", "MFU"],
        rows=speed_rows,
        notes=[
            setup,
            f"Pairs/s over the last {settings.train_steps - settings.warmup_steps} steps; one-time s (imports, load, "
            "tokenisation, reference precompute, saving) is excluded from it. Tokens/s counts pair tokens (prompt once + "
            "both completions) for both trainers; model tokens/pair is what each trainer runs through the model.",
        ],
    )
    memory_table = Table(
        title=f"Training memory and loss after the same steps ({settings.device})",
        columns=["Model", "Completions", "Fine-tuning", "Trainer", memory, "Memory ratio", "Loss step 1", "Loss last quarter"],
        rows=memory_rows,
        notes=[
            setup,
            "Sigmoid DPO loss: at step 1 both equal ln 2 = 0.693 (the policy starts as its reference); "
            "the last quarter's mean loss compares where the same number of steps took each trainer (the trainers "
            "visit the pairs in different orders).",
        ],
    )
    for result in results:
        if result["tokens"]["truncated"]:
            table.notes.append(
                f"{result['model']}, {result['completions']}: {result['tokens']['truncated']} pair(s) longer than max length "
                f"(longest {result['tokens']['longest']} tokens); riskdpo cuts the prompt's start, TRL the sequence's end."
            )
    targets = []
    for result in results:
        where = f"{result['model']}, {result['completions']} completions, {result['finetune']}"
        speedup = ratio(result["riskdpo"]["pairs_per_s"], result["trl"]["pairs_per_s"])
        threshold = LABEL_SPEEDUP if result["completions"] == "label" else COT_SPEEDUP
        work = result["tokens"]["trl_model"] / result["tokens"]["riskdpo_model"]
        cause = (
            f"sharing the prompt cuts the model's work by {work:.2f}x ({result['tokens']['trl_model']:.0f} vs "
            f"{result['tokens']['riskdpo_model']:.0f} model tokens per pair); per step riskdpo takes "
            f"{result['riskdpo']['step_s']:.3f} s, TRL {result['trl']['step_s']:.3f} s"
        )
        targets.append(Target(f"pairs/s over TRL's ({where})", speedup, threshold, ">=", "x", cause))
        if gpu:
            memory_ratio = ratio(result["riskdpo"]["peak_memory_mib"], result["trl"]["peak_memory_mib"])
            targets.append(
                Target(
                    f"peak GPU memory over TRL's ({where})",
                    memory_ratio,
                    GPU_MEMORY_RATIO[result["finetune"]],
                    "<=",
                    "",
                    f"riskdpo {result['riskdpo']['peak_memory_mib']:.0f} MiB, TRL {result['trl']['peak_memory_mib']:.0f} MiB, "
                    f"of which about {result['static_memory_mib']:.0f} MiB on each side is weights, gradients and AdamW "
                    "state (riskdpo.training.memory), about the same for both; the rest is activations and logits",
                )
            )
        if "mfu" in result["riskdpo"]:
            targets.append(
                Target(
                    f"MFU of riskdpo, full fine-tuning ({where})",
                    result["riskdpo"]["mfu"],
                    MFU_TARGET,
                    ">=",
                    "",
                    f"{result['riskdpo']['model_tokens_per_s']:.0f} model tokens/s at a median step of {result['riskdpo']['step_s']:.3f} s",
                )
            )
    return SectionResult(
        section="train",
        title="Training: riskdpo train against TRL DPOTrainer",
        description=__doc__.split("\n\n", 1)[1].strip(),
        tables=[table, memory_table],
        targets=targets,
        raw={"results": results, "settings": {"steps": settings.train_steps, "warmup": settings.warmup_steps, "batch": batch}},
    )


# ------------------------------------------------------------------ growth


def long_pairs(settings: Settings, count: int) -> Path:
    """Pairs whose prompts are several sample prompts joined, longer than any tested length.

    `riskdpo train` cuts a prompt from the left to fit max_length, so with
    these prompts every pair is exactly max_length tokens long.
    """
    path = settings.work / f"growth-long-{count}.pairs.jsonl"
    if not path.exists():
        sample = read_records(sample_pairs(settings.work, settings.sample, "label"))
        joined = "\n\n".join(pair["prompt"] for pair in sample[:12])
        pairs = [{**pair, "prompt": joined + "\n\n" + pair["prompt"]} for pair in itertools.islice(itertools.cycle(sample), count)]
        write_jsonl(path, pairs)
    return path


def train_growth_tables(settings: Settings) -> tuple[list[Table], list[dict]]:
    """riskdpo's step time against sequence length (fixed batch) and batch size (fixed length), tiny model."""
    model = train_model(settings, "tiny")
    steps = settings.growth_train_steps
    fixed_batch = settings.batch_size
    fixed_length = settings.growth_train_lengths[len(settings.growth_train_lengths) // 2]
    grid = [(length, fixed_batch) for length in settings.growth_train_lengths]
    grid += [(fixed_length, batch) for batch in settings.growth_train_batches if (fixed_length, batch) not in grid]
    points = []
    for length, batch in grid:
        pairs = long_pairs(settings, steps * batch)
        args = worker_args(settings, model, pairs, "lora", steps=steps, batch=batch, max_length=length)
        side = run_side(settings, "riskdpo_train.py", args, settings.work / f"growth-train-{length}-{batch}.json")
        step_s = statistics.median(side["step_seconds"][1:])
        points.append({"max_length": length, "batch": batch, "step_s": step_s, "step_seconds": side["step_seconds"]})

    def table(title: str, chosen: list[dict]) -> Table:
        rows = [
            [p["max_length"], p["batch"], p["step_s"] * 1000, p["batch"] / p["step_s"], p["step_s"] * 1e6 / (p["batch"] * p["max_length"])]
            for p in chosen
        ]
        return Table(
            title=title,
            columns=["Max length (tokens per pair)", "Batch (pairs)", "Step ms", "Pairs/s", "µs per token"],
            rows=rows,
            notes=[f"riskdpo train, tiny phi model, LoRA, {settings.device}; median step time over steps 2..{steps}."],
        )

    by_length = [p for p in points if p["batch"] == fixed_batch]
    by_batch = sorted((p for p in points if p["max_length"] == fixed_length), key=lambda p: p["batch"])
    return [
        table(f"Growth: train step time against sequence length (batch {fixed_batch})", by_length),
        table(f"Growth: train step time against batch size ({fixed_length} tokens per pair)", by_batch),
    ], points
