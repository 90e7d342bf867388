"""DPO fine-tuning, with the training loop written out plainly.

`train(TrainConfig(...))` runs these stages and returns OUTPUT_DIR/final-model:

1. Read the pairs and tokenize them. Prompts are rendered by
   `riskdpo.pairs.prompting.render_prompt`, the same function evaluation uses. A pair
   longer than `max_length` loses the *start* of its prompt (the options and the
   question sit at the end); a pair whose completion alone does not fit is skipped.
2. Optionally warm up with supervised learning on the chosen completions
   (`sft_epochs`): L = -Σ log π(y_c|x) / Σ|y_c|. The warmed-up model is saved to
   OUTPUT_DIR/sft-model and becomes both the starting point and the reference.
3. Build the policy: a fresh LoRA adapter (QLoRA on a 4-bit base), or the full
   model with its first blocks frozen. Dropout is switched off.
4. Reference log-probs, once: with LoRA the adapter is disabled (so the model is
   the base), in full fine-tuning the not-yet-trained model itself serves, so no
   second copy of the model is ever held. Cached in OUTPUT_DIR for resuming.
5. The loop. One optimizer step consumes one *global batch* of
   batch_size × processes × grad_accum pairs; the global batches of an epoch come
   from `length_grouped_order(lengths, global size, seed)`, so they do not depend
   on the number of processes, and each process takes fixed slices of each one
   (`process_slices`). The step's objective is Σ_pairs loss / |global batch|,
   so 1 process × batch 4 and 2 processes × batch 2 take the same steps.
6. Save OUTPUT_DIR/final-model (LoRA merged in) and OUTPUT_DIR/run.json.

Runs in a plain process, or in several under `accelerate launch` (DDP, or FSDP
with configs/fsdp.yaml) or `torchrun` (on machines without CUDA: gloo over CPU
processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from riskdpo.training.checkpoint import (
    Progress,
    checkpoint_dirs,
    fingerprint,
    load_checkpoint,
    load_reference,
    remove_partial_checkpoints,
    save_checkpoint,
    save_reference,
    save_trainable_only,
)
from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_dir, read_json, read_records, write_json
from riskdpo.models.logps import Group, batch_logps, collate, length_grouped_order, tokenize_group
from riskdpo.training.lora import (
    adapter_state,
    add_adapter,
    disable_dropout,
    freeze_first_blocks,
    lora_config,
    merge_adapter,
    quantization_config,
    save_plain_model,
)
from riskdpo.training.loss import LOSS_TYPES, dpo_loss
from riskdpo.training.metrics import MetricsLog, add_sums, dpo_means, dpo_sums, reduce_sums, truncate_metrics
from riskdpo.models.loading import hide_loading_bars, load_model, load_tokenizer, resolve_precision
from riskdpo.pairs.prompting import PromptFormat, render_prompt

SCHEDULERS = ("linear", "cosine")
_MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@dataclass
class TrainConfig:
    """Everything a run depends on; written to run.json as it is."""

    dataset: str
    output_dir: str
    model: str = "microsoft/phi-2"
    val: str | None = None
    # optimisation
    epochs: int = 3
    batch_size: int = 4  # pairs per process per micro-batch
    grad_accum: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None  # wins over warmup_ratio when given
    scheduler: str = "linear"
    max_grad_norm: float = 1.0  # 0 = no clipping
    seed: int = 2003
    # the loss
    beta: float = 0.5
    loss: str = "sigmoid"
    label_smoothing: float = 0.0
    sft_epochs: int = 0
    # which weights train
    lora: bool = True
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0  # see riskdpo.training.lora.DEFAULT_LORA_DROPOUT
    lora_targets: str = "all-linear"
    freeze_layers: int = 0
    load_in_4bit: bool = False
    precision: str = "auto"
    gradient_checkpointing: bool = False
    # data and prompts
    max_length: int = 512
    chat_template: bool = True
    system: str | None = None
    trust_remote_code: bool = False
    # bookkeeping
    save_every: int = 0  # 0 = no checkpoints
    keep_checkpoints: int = 2
    resume: bool = False
    log_every: int = 1
    eval_every: int = 0  # 0 = validation at the start and the end only
    wandb_project: str | None = None
    progress: bool = True


def validate_config(config: TrainConfig) -> None:
    """Reject impossible option values with one line naming the option."""
    checks = [
        (config.beta > 0, f"--beta {config.beta}: must be greater than 0"),
        (config.loss in LOSS_TYPES, f"--loss {config.loss}: choose one of {', '.join(LOSS_TYPES)}"),
        (0 <= config.label_smoothing < 0.5, f"--label-smoothing {config.label_smoothing}: must be in [0, 0.5)"),
        (config.scheduler in SCHEDULERS, f"--scheduler {config.scheduler}: choose one of {', '.join(SCHEDULERS)}"),
        (config.epochs >= 1, f"--epochs {config.epochs}: must be at least 1"),
        (config.batch_size >= 1, f"--batch-size {config.batch_size}: must be at least 1"),
        (config.grad_accum >= 1, f"--grad-accum {config.grad_accum}: must be at least 1"),
        (config.lr > 0, f"--lr {config.lr}: must be greater than 0"),
        (0 <= config.warmup_ratio <= 1, f"--warmup-ratio {config.warmup_ratio}: must be in [0, 1]"),
        (config.max_length >= 2, f"--max-length {config.max_length}: must be at least 2"),
        (config.sft_epochs >= 0, f"--sft-epochs {config.sft_epochs}: must not be negative"),
        (config.freeze_layers >= 0, f"--freeze-layers {config.freeze_layers}: must not be negative"),
        (config.log_every >= 1, f"--log-every {config.log_every}: must be at least 1"),
        (config.lora_rank >= 1, f"--lora-rank {config.lora_rank}: must be at least 1"),
        (min(config.save_every, config.eval_every, config.keep_checkpoints, config.warmup_steps or 0) >= 0,
         "--save-every, --eval-every, --keep-checkpoints and --warmup-steps must not be negative"),
        (not (config.lora and config.freeze_layers), "--freeze-layers applies to --full fine-tuning, not --lora"),
        (config.lora or not config.load_in_4bit, "--load-in-4bit needs --lora: a 4-bit model cannot be trained in full"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


# --------------------------------------------------------------------- data


@dataclass
class PairSet:
    """Tokenized pairs: (prompt ids, [chosen ids, rejected ids]) per pair."""

    groups: list[Group]
    truncated: int  # prompts cut from the left to fit max_length
    skipped: int  # pairs dropped because a completion alone is too long

    @property
    def lengths(self) -> list[int]:
        return [len(prompt) + max(map(len, completions)) for prompt, completions in self.groups]


def load_pairs(path: str | Path) -> list[dict]:
    """Pairs from .jsonl or .json; each record needs prompt, chosen and rejected text."""
    source = Path(path)
    records = read_records(source)
    if not records:
        raise UserError(f"{source}: the file holds no pairs")
    for number, record in enumerate(records, start=1):
        missing = [key for key in ("prompt", "chosen", "rejected") if not (isinstance(record.get(key), str) and record[key])]
        if missing:
            raise UserError(
                f"{source}, record {number}: no {' / '.join(missing)} text (every pair needs prompt, chosen and rejected)"
            )
    return records


def most_common(records: list[dict], key: str) -> str | None:
    """The most frequent non-empty value of `key` among the records, or None."""
    values = Counter(record[key] for record in records if record.get(key))
    return values.most_common(1)[0][0] if values else None


def tokenize_pairs(tokenizer: Any, records: list[dict], fmt: PromptFormat, max_length: int) -> PairSet:
    """Render and tokenize pairs, fitting each into `max_length` tokens."""
    groups, truncated, skipped = [], 0, 0
    for record in records:
        prompt = render_prompt(tokenizer, record["prompt"], fmt)
        prompt_ids, completion_ids = tokenize_group(tokenizer, prompt, [record["chosen"], record["rejected"]])
        room = max_length - max(map(len, completion_ids))
        if room < 1:
            skipped += 1
            continue
        if len(prompt_ids) > room:
            prompt_ids = prompt_ids[-room:]
            truncated += 1
        groups.append((prompt_ids, completion_ids))
    return PairSet(groups, truncated, skipped)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------- batches and steps

#: A micro-batch of one process: pair indices and a weight (0 for a padding batch).
Micro = tuple[list[int], float]


def process_slices(global_batch: list[int], batch_size: int, accelerator: Any, accum: int) -> list[Micro]:
    """This process's micro-batches of one global batch.

    Micro-batch i of process r is slice i·P + r of the global batch cut into
    slices of `batch_size` (P processes), so the processes together cover the
    global batch exactly once. A process whose slice is empty (the short last
    batch of an epoch) runs the batch's first pair with weight 0, because every
    process must take part in every gradient all-reduce.
    """
    processes, rank = accelerator.num_processes, accelerator.process_index
    micros = []
    for i in range(accum):
        start = (i * processes + rank) * batch_size
        indices = global_batch[start : start + batch_size]
        micros.append((indices, 1.0) if indices else (global_batch[:1], 0.0))
    return micros


def whole_split(lengths: list[int], batch_size: int, accelerator: Any) -> Iterator[Micro]:
    """This process's batches for a pass (no gradients) over a whole split."""
    for global_batch in length_grouped_order(lengths, batch_size * accelerator.num_processes):
        yield from process_slices(global_batch, batch_size, accelerator, 1)


def accumulate(accelerator: Any, model: Any, micros: list[Micro], compute: Callable) -> dict[str, float]:
    """Forward and backward over this process's micro-batches of one global batch.

    Gradients are all-reduced once, after the last micro-batch. Returns the
    step's statistics summed over all processes.
    """
    sums = None
    for i, (indices, weight) in enumerate(micros):
        last = i == len(micros) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            objective, batch_sums = compute(indices, weight)
            accelerator.backward(objective)
        sums = add_sums(sums, batch_sums)
    return reduce_sums(accelerator, sums)


def apply_gradients(
    accelerator: Any, model: Any, optimizer: Any, scheduler: Any, config: TrainConfig, loss: float, where: str
) -> float:
    """Clip, check, step. Returns the gradient norm before clipping.

    A non-finite loss (or gradient, outside fp16 where the loss scaler handles
    overflow) stops the run before the weights are touched, so the last
    checkpoint stays good.
    """
    grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm or math.inf))
    grad_ok = math.isfinite(grad_norm) or accelerator.mixed_precision == "fp16"
    if not (math.isfinite(loss) and grad_ok):
        checkpoints = checkpoint_dirs(config.output_dir)
        kept = f"the last checkpoint is {checkpoints[-1]}" if checkpoints else "no checkpoint was written"
        raise UserError(
            f"training stopped: the loss became non-finite ({loss}, gradient norm {grad_norm}) at {where}; "
            f"{kept}; try a lower --lr"
        )
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def make_optimizer(model: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW (weight decay on matrices only, not on biases and norms) and the schedule:
    linear warm-up to `lr`, then linear or cosine decay to 0 at the last step."""
    from transformers import get_scheduler

    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)
    warmup = config.warmup_steps if config.warmup_steps is not None else math.ceil(config.warmup_ratio * total_steps)
    scheduler = get_scheduler(config.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    return optimizer, scheduler


def build_model(config: TrainConfig, base: str, precision: str, accelerator: Any) -> Any:
    """Load `base` and decide which weights train.

    With LoRA the frozen base is loaded in the training precision (or 4-bit);
    in full fine-tuning the weights stay fp32 and bf16/fp16 is autocast
    (mixed precision), since AdamW updates are lost in bf16 weights.
    """
    quantize = {}
    if config.load_in_4bit:  # the 4-bit weights are placed on this process's GPU as they load
        quantize = {"quantization_config": quantization_config(precision),
                    "device_map": {"": accelerator.local_process_index}}
    model = load_model(
        base, precision=precision if config.lora else "fp32", trust_remote_code=config.trust_remote_code, **quantize
    )
    disable_dropout(model)
    if config.gradient_checkpointing and not config.load_in_4bit:
        enable_checkpointing(model)
    if config.lora:
        return add_adapter(model, adapter_config(config), quantized=config.load_in_4bit,
                           gradient_checkpointing=config.gradient_checkpointing)
    freeze_first_blocks(model, config.freeze_layers)
    return model


def enable_checkpointing(model: Any) -> None:
    """Activation (gradient) checkpointing, non-reentrant (works with frozen inputs, as under LoRA)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def adapter_config(config: TrainConfig) -> Any:
    return lora_config(config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets)


def save_model(
    accelerator: Any, model: Any, tokenizer: Any, config: TrainConfig, base: str, precision: str, target: Path
) -> None:
    """Save a plain model (LoRA merged into the unquantized `base`) with its tokenizer."""
    state = accelerator.get_state_dict(model)  # every process: FSDP gathers the shards here
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        with atomic_dir(target) as tmp:
            if config.lora:
                adapter = adapter_state(unwrapped, state)
                merged = merge_adapter(base, adapter, adapter_config(config), precision=precision,
                                       trust_remote_code=config.trust_remote_code)
                save_plain_model(merged, tokenizer, tmp)
            else:
                save_plain_model(unwrapped, tokenizer, tmp, state_dict=state)
    accelerator.wait_for_everyone()


# ------------------------------------------------------------- the passes


def dpo_batch(
    model: Any, data: PairSet, reference: torch.Tensor, config: TrainConfig, pad_id: int, scale: float,
    indices: list[int], weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPO objective (scaled to the global batch) and statistics of one micro-batch.

    For IPO, log-probs are averaged per token before the loss, as IPO defines them.
    """
    batch = collate([data.groups[i] for i in indices], pad_id).to(_device(model))
    logps, counts = batch_logps(model, batch)
    ref = reference[indices].to(logps.device)
    policy = logps
    if config.loss == "ipo":
        policy, ref = logps / counts, ref / counts
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], config.beta, config.loss, config.label_smoothing
    )
    sums = dpo_sums(losses, chosen_rewards, rejected_rewards, logps[:, 0], logps[:, 1], weight)
    sums["tokens"] = torch.tensor(batch.num_tokens * weight)
    return losses.sum() * weight * scale, sums


def sft_batch(
    model: Any, data: PairSet, pad_id: int, scale: float, indices: list[int], weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed NLL of the chosen completions (scaled to the global batch's token count)."""
    batch = collate([(data.groups[i][0], data.groups[i][1][:1]) for i in indices], pad_id).to(_device(model))
    logps, counts = batch_logps(model, batch)
    nll = -logps.sum()
    sums = {
        "nll": nll.detach() * weight,
        "chosen_tokens": counts.sum().float() * weight,
        "pairs": torch.tensor(len(indices) * weight),
        "tokens": torch.tensor(batch.num_tokens * weight),
    }
    return nll * weight * scale, sums


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def reference_logps(accelerator: Any, model: Any, data: PairSet, batch_size: int, lora: bool, pad_id: int) -> torch.Tensor:
    """log π_ref of each pair's [chosen, rejected], shape [N, 2].

    Each process computes its slices of the split; the results are gathered.
    """
    from accelerate.utils import gather_object

    rows = []
    model.eval()
    no_adapter = accelerator.unwrap_model(model).disable_adapter() if lora else contextlib.nullcontext()
    with no_adapter:
        for indices, weight in whole_split(data.lengths, batch_size, accelerator):
            logps, _ = batch_logps(model, collate([data.groups[i] for i in indices], pad_id).to(_device(model)))
            if weight:
                rows += list(zip(indices, logps.float().cpu().tolist()))
    model.train()
    if accelerator.num_processes > 1:
        rows = gather_object(rows)
    result = torch.empty(len(data.groups), 2)
    for index, values in rows:
        result[index] = torch.tensor(values)
    return result


@torch.no_grad()
def evaluate(
    accelerator: Any, model: Any, data: PairSet, reference: torch.Tensor, config: TrainConfig, pad_id: int
) -> dict[str, float]:
    """DPO statistics on a validation split, keys prefixed `val/`."""
    start = time.perf_counter()
    model.eval()
    sums = None
    for indices, weight in whole_split(data.lengths, config.batch_size, accelerator):
        _, batch_sums = dpo_batch(model, data, reference, config, pad_id, 0.0, indices, weight)
        sums = add_sums(sums, batch_sums)
    model.train()
    totals = reduce_sums(accelerator, sums)
    seconds = time.perf_counter() - start
    speed = {"val/pairs/s": totals["pairs"] / seconds, "val/tokens/s": totals["tokens"] / seconds}
    return {**dpo_means(totals, "val/"), **speed}


def steps_per_epoch(data: PairSet, config: TrainConfig, accelerator: Any) -> tuple[int, int]:
    """(pairs per global batch, optimizer steps per epoch)."""
    global_size = config.batch_size * accelerator.num_processes * config.grad_accum
    return global_size, math.ceil(len(data.groups) / global_size)


def epoch_batches(data: PairSet, global_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of one epoch: a pure function of the seed and the epoch."""
    return length_grouped_order(data.lengths, global_size, seed=seed * 1000 + epoch)


def supervised_warmup(
    accelerator: Any, config: TrainConfig, tokenizer: Any, data: PairSet, precision: str, log: MetricsLog
) -> str:
    """Train on the chosen completions for `sft_epochs`; return the saved model's path."""
    target = Path(config.output_dir) / "sft-model"
    model = build_model(config, config.model, precision, accelerator)
    global_size, per_epoch = steps_per_epoch(data, config, accelerator)
    optimizer, scheduler = make_optimizer(model, config, per_epoch * config.sft_epochs)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    step = 0
    for epoch in range(config.sft_epochs):
        for global_batch in epoch_batches(data, global_size, config.seed, -1 - epoch):
            scale = accelerator.num_processes / sum(len(data.groups[i][1][0]) for i in global_batch)
            micros = process_slices(global_batch, config.batch_size, accelerator, config.grad_accum)
            sums = accumulate(accelerator, model, micros,
                              lambda idx, w: sft_batch(model, data, tokenizer.pad_token_id, scale, idx, w))
            loss = sums["nll"] / sums["chosen_tokens"]
            lr = optimizer.param_groups[0]["lr"]
            step += 1
            grad_norm = apply_gradients(accelerator, model, optimizer, scheduler, config, loss, f"warm-up step {step}")
            log.log({"sft/step": step, "sft/epoch": epoch + 1, "sft/loss": loss, "sft/lr": lr, "sft/grad_norm": grad_norm})
    save_model(accelerator, model, tokenizer, config, config.model, precision, target)
    accelerator.free_memory()
    return str(target)


# ----------------------------------------------------------------- the run


def dpo_loop(accelerator: Any, model: Any, optimizer: Any, scheduler: Any, config: TrainConfig, data: PairSet,
             val_data: PairSet | None, reference: dict[str, torch.Tensor], progress: Progress, log: MetricsLog,
             pad_id: int) -> None:
    """The DPO epochs from `progress` on: step, log, validate, checkpoint.

    Everything a step logs or validates is written before that step's
    checkpoint, so a run resumed from step N rewrites exactly the lines after N.
    """
    from tqdm.auto import tqdm

    global_size, per_epoch = steps_per_epoch(data, config, accelerator)
    total_steps = per_epoch * config.epochs
    if val_data and progress.step == 0:
        log.log({"step": 0, "epoch": 0.0, **evaluate(accelerator, model, val_data, reference["val"], config, pad_id)})
    bar = tqdm(total=total_steps, initial=progress.step, desc="dpo", unit="step", file=sys.stderr,
               disable=not (config.progress and accelerator.is_local_main_process))
    window_start = time.perf_counter()
    for epoch in range(progress.epoch, config.epochs):
        batches = epoch_batches(data, global_size, config.seed, epoch)
        for position in range(progress.step_in_epoch if epoch == progress.epoch else 0, len(batches)):
            global_batch = batches[position]
            scale = accelerator.num_processes / len(global_batch)
            micros = process_slices(global_batch, config.batch_size, accelerator, config.grad_accum)
            sums = accumulate(accelerator, model, micros,
                              lambda idx, w: dpo_batch(model, data, reference["train"], config, pad_id, scale, idx, w))
            loss = sums["loss"] / sums["pairs"]
            lr = optimizer.param_groups[0]["lr"]
            where = f"step {progress.step + 1} (epoch {epoch + 1})"
            grad_norm = apply_gradients(accelerator, model, optimizer, scheduler, config, loss, where)
            step_sums = {**sums, "grad_norm": grad_norm, "steps": 1}
            window = {key: progress.window.get(key, 0.0) + value for key, value in step_sums.items()}
            progress = Progress(progress.step + 1, epoch, position + 1, window)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{sums['rewards/accuracy'] / sums['pairs']:.2f}")

            at = {"step": progress.step, "epoch": round(epoch + (position + 1) / len(batches), 4)}
            if progress.step % config.log_every == 0 or progress.step == total_steps:
                seconds = time.perf_counter() - window_start
                log.log({**at, **dpo_means(window), "lr": lr, "grad_norm": window["grad_norm"] / window["steps"],
                         "pairs/s": window["pairs"] / seconds, "tokens/s": window["tokens"] / seconds})
                progress.window, window_start = {}, time.perf_counter()
            due = config.eval_every and progress.step % config.eval_every == 0
            if val_data and (due or progress.step == total_steps):
                log.log({**at, **evaluate(accelerator, model, val_data, reference["val"], config, pad_id)})
            if config.save_every and progress.step % config.save_every == 0:
                save_checkpoint(accelerator, config.output_dir, progress, config.keep_checkpoints)
    bar.close()


def cached_reference(accelerator: Any, model: Any, config: TrainConfig, base: str, splits: dict[str, PairSet],
                     pad_id: int) -> dict[str, torch.Tensor]:
    """Reference log-probs of every split: from OUTPUT_DIR's cache when it was computed
    from the same reference model and token ids, else computed (before any training
    step, or before a checkpoint is loaded) and cached."""
    path = Path(config.output_dir) / "reference-logps.pt"
    key = fingerprint(base, config.lora, {name: split.groups for name, split in splits.items()})
    reference = load_reference(path, key)
    if reference is None:
        reference = {name: reference_logps(accelerator, model, split, config.batch_size, config.lora, pad_id)
                     for name, split in splits.items()}
        if accelerator.is_main_process:
            save_reference(path, key, reference)
    return reference


def split_info(path: str, records: list[dict], split: PairSet) -> dict[str, Any]:
    """What run.json says about a pairs file."""
    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path), "pairs": len(records), "used": len(split.groups),
            "truncated_prompts": split.truncated, "skipped_pairs": split.skipped}


def fit_split(
    path: str, records: list[dict], tokenizer: Any, fmt: PromptFormat, max_length: int, accelerator: Any
) -> PairSet:
    """Tokenize the pairs of one file; report cut prompts and skipped pairs."""
    split = tokenize_pairs(tokenizer, records, fmt, max_length)
    if not split.groups:
        raise UserError(f"{path}: no pair fits in --max-length {max_length} (a completion needs it with one prompt token)")
    if split.truncated or split.skipped:
        _say(accelerator, f"{path}: cut {split.truncated} prompt(s) from the left to fit --max-length {max_length}; "
                          f"skipped {split.skipped} pair(s) whose completion alone fills it")
    return split


def _versions() -> dict[str, str]:
    found = {}
    for package in ("torch", "transformers", "peft", "accelerate", "riskdpo"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _previous_wandb_run_id(output: Path) -> str | None:
    """The W&B run id an interrupted run recorded in its run.json, so the resumed run continues it."""
    try:
        return read_json(output / "run.json", expect=dict).get("wandb_run_id")
    except UserError:  # no run.json (killed before writing it) or an unreadable one: a new W&B run
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _say(accelerator: Any, message: str) -> None:
    accelerator.print(message, file=sys.stderr)


def train(config: TrainConfig) -> Path:
    """Run DPO as configured; return OUTPUT_DIR/final-model."""
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    validate_config(config)
    if not config.progress:
        hide_loading_bars()
    output = Path(config.output_dir)
    records = load_pairs(config.dataset)  # bad files fail before anything slow
    val_records = load_pairs(config.val) if config.val else None
    checkpoints = checkpoint_dirs(output)
    if checkpoints and not config.resume:
        raise UserError(
            f"{output} holds checkpoints of an earlier run; pass --resume to continue it or choose another --output-dir"
        )

    # torchrun on a machine without CUDA: gloo over CPU processes (accelerate
    # takes that route only when told to use the CPU).
    cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    precision = resolve_precision(config.precision, PartialState(cpu=cpu).device.type)
    if config.load_in_4bit:
        quantization_config(precision)  # fail now where 4-bit cannot run, not after loading the model
    # accelerate keeps one precision per process; a second run in the same process
    # (a notebook, the tests) may want another. The process group is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(cpu=cpu, mixed_precision=_MIXED_PRECISION[precision], step_scheduler_with_optimizer=False)
    set_seed(config.seed)
    timings = {"started": _now()}
    clock = time.perf_counter()

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    fmt = PromptFormat(config.chat_template, config.system, most_common(records, "instruction"))
    data = fit_split(config.dataset, records, tokenizer, fmt, config.max_length, accelerator)
    val_data = fit_split(config.val, val_records, tokenizer, fmt, config.max_length, accelerator) if config.val else None
    resume_from = checkpoints[-1] if checkpoints else None
    if config.resume and resume_from is None:
        _say(accelerator, f"{output}: no checkpoint to resume from; starting from the beginning")
    global_size, per_epoch = steps_per_epoch(data, config, accelerator)
    run_info = {
        "config": dataclasses.asdict(config),
        "versions": _versions(),
        "prompt_format": fmt.to_json(),
        "response": most_common(records, "response"),
        "dataset": split_info(config.dataset, records, data),
        "val": split_info(config.val, val_records, val_data) if val_data else None,
        "precision": precision,
        "world_size": accelerator.num_processes,
        "global_batch_size": global_size,
        "steps": per_epoch * config.epochs,
        "resumed_from": str(resume_from) if resume_from else None,
        "status": "running",
        "timings": timings,
    }
    interrupted_wandb_run = _previous_wandb_run_id(output) if resume_from is not None else None
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        remove_partial_checkpoints(output)
        if resume_from is not None:
            truncate_metrics(output / "metrics.jsonl", int(resume_from.name.split("-")[1]))
    log = MetricsLog(output / "metrics.jsonl", active=accelerator.is_main_process, resume=resume_from is not None,
                     wandb_project=config.wandb_project, wandb_run_id=interrupted_wandb_run, config=run_info["config"])
    run_info["wandb_run_id"] = log.wandb_run_id
    if accelerator.is_main_process:
        write_json(output / "run.json", run_info)
    accelerator.wait_for_everyone()
    try:
        base = config.model
        if config.sft_epochs:
            start = time.perf_counter()
            base = str(output / "sft-model")
            if resume_from is None or not (output / "sft-model" / "config.json").exists():
                base = supervised_warmup(accelerator, config, tokenizer, data, precision, log)
            timings["sft_seconds"] = round(time.perf_counter() - start, 3)
            set_seed(config.seed)  # the DPO model starts alike whether the warm-up ran now or before a resume

        model = build_model(config, base, precision, accelerator)
        optimizer, scheduler = make_optimizer(model, config, per_epoch * config.epochs)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        save_trainable_only(accelerator)

        start = time.perf_counter()
        splits = {"train": data, **({"val": val_data} if val_data else {})}
        reference = cached_reference(accelerator, model, config, base, splits, tokenizer.pad_token_id)
        timings["reference_seconds"] = round(time.perf_counter() - start, 3)

        progress = load_checkpoint(accelerator, resume_from) if resume_from else Progress()
        start = time.perf_counter()
        dpo_loop(accelerator, model, optimizer, scheduler, config, data, val_data, reference, progress, log,
                 tokenizer.pad_token_id)
        timings["train_seconds"] = round(time.perf_counter() - start, 3)
        final = output / "final-model"
        save_model(accelerator, model, tokenizer, config, base, precision, final)
    except BaseException as error:
        if accelerator.is_main_process:
            write_json(output / "run.json", {**run_info, "status": "failed", "error": str(error)})
        log.close(failed=True)
        raise
    log.close()

    timings.update(finished=_now(), total_seconds=round(time.perf_counter() - clock, 3))
    if accelerator.is_main_process:
        write_json(output / "run.json", {**run_info, "status": "finished"})
    accelerator.wait_for_everyone()
    return final
