"""The step mechanics: micro-batches, gradient accumulation, gradient application,
the optimizer and its schedule, and the forward passes they run.

One optimizer step consumes one *global batch* of batch_size × processes ×
grad_accum pairs. Each process takes fixed slices of it (`process_slices`) and
accumulates gradients over its micro-batches; the step's objective is
Σ_pairs loss / |global batch|, so 1 process × batch 4 and 2 processes × batch 2
take the same steps. The gradients are all-reduced once per step.

`RunState` is what the stages of a run share (settings, processes, tokenized
pairs, log); `Trainee` the model with its optimizer and schedule.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from riskdpo.core.errors import UserError
from riskdpo.models.logps import batch_logps, collate, length_grouped_order, packed_length, to_device
from riskdpo.training.checkpoint import checkpoint_dirs
from riskdpo.training.config import TrainConfig
from riskdpo.training.loss import PER_TOKEN_LOSSES, dpo_loss, dpo_nll_loss
from riskdpo.training.metrics import MetricsLog, add_sums, dpo_means, dpo_sums, reduce_sums
from riskdpo.training.pair_data import PairSet, steps_per_epoch

#: A micro-batch of one process: pair indices and a weight (0 for a padding batch).
Micro = tuple[list[int], float]


@dataclass
class RunState:
    """What every stage of one run shares: its settings, its processes, the tokenized pairs and the log."""

    config: TrainConfig
    accelerator: Any
    tokenizer: Any
    precision: str
    data: PairSet
    val_data: PairSet | None
    log: MetricsLog | None = None

    @property
    def output(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def global_size(self) -> int:
        """Pairs per optimizer step, over all processes."""
        return self.config.batch_size * self.accelerator.num_processes * self.config.grad_accum

    @property
    def per_epoch(self) -> int:
        """Optimizer steps per epoch."""
        return steps_per_epoch(len(self.data.groups), self.global_size)

    def say(self, message: str) -> None:
        """One line on stderr, from the main process only."""
        self.accelerator.print(message, file=sys.stderr)


@dataclass
class Trainee:
    """The model being trained with its optimizer and learning-rate schedule (as accelerate prepared them)."""

    model: Any
    optimizer: Any
    scheduler: Any

    @property
    def lr(self) -> float:
        """The learning rate of the coming step."""
        return self.optimizer.param_groups[0]["lr"]


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

    Gradients are all-reduced once, after the last micro-batch. The forward and
    the loss of a micro-batch run in one autocast region, the backward pass
    outside it. Returns the step's statistics summed over all processes: the
    sums stay on the device until `reduce_sums` reads them, the step's one wait
    for the device besides the gradient norm (`apply_gradients`).
    """
    sums = None
    for i, (indices, weight) in enumerate(micros):
        last = i == len(micros) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            with accelerator.autocast():  # one region per micro-batch: each weight is cast once (see `prepare`)
                objective, batch_sums = compute(indices, weight)
            accelerator.backward(objective)
        sums = add_sums(sums, on_device(batch_sums, accelerator.device))
    return reduce_sums(accelerator, sums)


def on_device(sums: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Statistics on `device`; the counts made on the host (pairs, tokens) are queued there
    without waiting (`to_device`), so adding and reducing them never waits for the device."""
    return {key: to_device(value, device) for key, value in sums.items()}


def apply_gradients(accelerator: Any, trainee: Trainee, config: TrainConfig, loss: float, where: str,
                    shape: str = "") -> float:  # fmt: skip
    """Clip, check, step. Returns the gradient norm before clipping.

    A non-finite loss (or gradient, outside fp16 where the loss scaler handles
    overflow) stops the run before the weights are touched, so the last
    checkpoint stays good; `non_finite_message` says which of the two and the
    step's `shape`.
    """
    grad_norm = float(accelerator.clip_grad_norm_(trainee.model.parameters(), config.max_grad_norm or math.inf))
    grad_ok = math.isfinite(grad_norm) or accelerator.mixed_precision == "fp16"
    if not (math.isfinite(loss) and grad_ok):
        checkpoints = checkpoint_dirs(config.output_dir)
        kept = f"the last checkpoint is {checkpoints[-1]}" if checkpoints else "no checkpoint was written"
        raise UserError(non_finite_message(loss, grad_norm, where, shape, kept))
    trainee.optimizer.step()
    trainee.scheduler.step()
    trainee.optimizer.zero_grad(set_to_none=True)
    return grad_norm


def non_finite_message(loss: float, grad_norm: float, where: str, shape: str, kept: str) -> str:
    """The one line that stops a run whose loss or gradient is not finite.

    A non-finite loss comes from the forward pass (weights blown up by too high a
    learning rate, most often). A finite loss with a non-finite gradient comes from
    the backward pass: an overflow in low precision or a faulty attention kernel,
    which a lower --lr does not cure; the micro-batches' shape (rows × packed
    tokens) tells whether it follows the batch length.
    """
    at = f"at {where}" + (f" (micro-batches of rows × tokens: {shape})" if shape else "")
    if not math.isfinite(loss):
        return f"training stopped: the loss became non-finite ({loss}, gradient norm {grad_norm}) {at}; {kept}; try a lower --lr"
    return (f"training stopped: the gradient became non-finite (norm {grad_norm}) while the loss was finite ({loss:.6g}) "
            f"{at}; {kept}; an overflow or an attention kernel fault in the backward pass: try --precision fp32")


def step_shape(groups: list, micros: list[Micro], completions: int | None = None) -> str:
    """This process's micro-batches of one step as rows × packed tokens (`riskdpo.models.logps.pack`'s
    length), e.g. ``"2 × 160, 2 × 144"``; `completions` keeps only the first ones of each group (SFT: 1)."""
    shapes = []
    for indices, _ in micros:
        chosen = [(groups[i][0], groups[i][1][:completions]) for i in indices]
        shapes.append(f"{len(indices)} × {packed_length(chosen)}")
    return ", ".join(shapes)


def prepare(accelerator: Any, model: Any, optimizer: Any, scheduler: Any) -> Trainee:
    """The model, optimizer and schedule as accelerate prepares them (device, DDP or FSDP),
    without accelerate's autocast around every forward call.

    Under mixed precision accelerate stores an autocast-wrapped bound method as
    the model's `forward`: one autocast region per forward call. Autocast keeps
    the low-precision copy of each weight it casts until its outermost region
    ends, so separate regions cast every weight again (under --full a fresh bf16
    copy of every weight per forward, and per batch of a reference or validation
    pass), and the bound method is a reference cycle (model -> forward -> model)
    that keeps the model alive after its run until the cyclic garbage collector
    happens to run. riskdpo enters the regions itself: one per micro-batch
    (`accumulate`), one per reference or validation pass.
    """
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    inner = accelerator.unwrap_model(model)
    for wrapper in ("forward", "_original_forward"):  # back to the class's forward
        inner.__dict__.pop(wrapper, None)
    return Trainee(model, optimizer, scheduler)


def fsdp_on_cpu_processes(accelerator: Any) -> None:
    """Shard with FSDP2 over CPU processes (gloo) when FSDP is asked for (ACCELERATE_USE_FSDP=true
    and the FSDP_* variables that `accelerate launch --config_file configs/fsdp.yaml` sets).

    accelerate (1.15) selects FSDP only on accelerator devices; on CPU processes
    it ignores the request and silently trains with plain data parallelism. This
    sets the state accelerate builds on GPUs (distributed type FSDP, the plugin
    read from the same variables, and under bf16 the mixed-precision policy
    accelerate gives FSDP2 on GPUs: parameters gathered and gradients reduced in
    bf16, fp32 sharded weights for AdamW), so its FSDP2 code, `fully_shard` over a
    CPU device mesh, is what runs: the tests prove FSDP training on CPUs this way.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables
    if plugin.fsdp_version != 2:
        raise UserError(f"FSDP on CPU processes: fsdp_version {plugin.fsdp_version} is not supported; use 2 (FSDP2)")
    if accelerator.mixed_precision != "no":  # as on GPUs: compute and reduce gradients in bf16/fp16
        plugin.set_mixed_precision(accelerator.mixed_precision)
    # both shared states, as accelerate sets them on GPUs (a later AcceleratorState() copies the partial one)
    AcceleratorState._shared_state.update(distributed_type=DistributedType.FSDP, fsdp_plugin=plugin)
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def release(accelerator: Any, trainee: Trainee) -> None:
    """Free a trainee's model, gradients and optimizer state now, not when the garbage collector
    gets to them: drops the references, collects, and empties the device's cache (a warm-up model
    would otherwise sit beside the DPO model)."""
    trainee.model = trainee.optimizer = trainee.scheduler = None
    accelerator.free_memory()  # forgets accelerate's references, gc.collect(), empties the CUDA cache


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


@dataclass(frozen=True)
class Objective:
    """What a step minimises, and how its sums become logged means.

    - dpo: the DPO loss family (`dpo_batch`) against the reference log-probs of
      each split (`reference["train"]`, `reference["val"]`); a global batch's
      objective is Σ_pairs L / |batch|.
    - sft: cross-entropy on the chosen responses (`sft_batch`),
      L = -Σ log π(y_c|x) / Σ|y_c| over the global batch (`loss.sft_loss`), no reference.
    """

    kind: str
    config: TrainConfig
    pad_id: int
    reference: dict[str, torch.Tensor] | None = None

    def batch(self, model: Any, data: PairSet, split: str, scale: float, micro: Micro) -> tuple[torch.Tensor, dict]:
        """The scaled objective and the statistics' sums of one micro-batch of `split`."""
        if self.kind == "sft":
            return sft_batch(model, data, self.pad_id, scale, micro)
        return dpo_batch(model, data, self.reference[split], self.config, self.pad_id, scale, micro)

    def scale(self, data: PairSet, global_batch: list[int], processes: int) -> float:
        """The factor that turns a process's summed loss into its share of the global batch's mean."""
        if self.kind == "sft":
            return processes / sum(len(data.groups[i][1][0]) for i in global_batch)
        return processes / len(global_batch)

    def means(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]:
        """The logged statistics: DPO's means over pairs, or SFT's token-mean loss."""
        if self.kind == "sft":
            return {prefix + "loss": sums["nll"] / sums["chosen_tokens"]}
        return dpo_means(sums, prefix)


def optimizer_step(
    run: RunState, trainee: Trainee, objective: Objective, global_batch: list[int], where: str
) -> tuple[dict[str, float], float, float, float]:
    """One optimizer step on a global batch: (summed statistics, loss, the step's lr, gradient norm)."""
    config, accelerator = run.config, run.accelerator
    scale = objective.scale(run.data, global_batch, accelerator.num_processes)
    micros = process_slices(global_batch, config.batch_size, accelerator, config.grad_accum)
    sums = accumulate(accelerator, trainee.model, micros,
                      lambda *micro: objective.batch(trainee.model, run.data, "train", scale, micro))
    loss = objective.means(sums)["loss"]
    lr = trainee.lr
    shape = step_shape(run.data.groups, micros, 1 if objective.kind == "sft" else None)
    grad_norm = apply_gradients(accelerator, trainee, config, loss, where, shape)
    return sums, loss, lr, grad_norm


# ------------------------------------------------------------- the passes


def dpo_batch(
    model: Any, data: PairSet, reference: torch.Tensor, config: TrainConfig, pad_id: int, scale: float, micro: Micro
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPO objective (scaled to the global batch) and statistics of one micro-batch.

    The losses on per-token averages (`PER_TOKEN_LOSSES`: ipo, sigmoid-norm)
    get the completions' token counts. With `nll_weight` W > 0 the objective is
    RPO, L_DPO + W · (-log π(y_c|x) / |y_c|) (`dpo_nll_loss`), and the NLL term
    is summed apart as `nll`; W = 0 is the DPO loss alone.
    """
    indices, weight = micro
    batch = collate([data.groups[i] for i in indices], pad_id).to(_device(model))
    logps, counts = batch_logps(model, batch)
    ref = to_device(reference[indices], logps.device)
    pairs = (logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1])
    nll = None
    if config.nll_weight:
        losses, nll, chosen_rewards, rejected_rewards = dpo_nll_loss(
            *pairs, counts[:, 0], counts[:, 1], config.beta, config.nll_weight, config.loss, config.label_smoothing
        )
    else:
        per_token = {}
        if config.loss in PER_TOKEN_LOSSES:
            per_token = {"chosen_counts": counts[:, 0], "rejected_counts": counts[:, 1]}
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            *pairs, config.beta, config.loss, config.label_smoothing, **per_token
        )
    sums = dpo_sums(losses, chosen_rewards, rejected_rewards, logps[:, 0], logps[:, 1], weight)
    if nll is not None:
        sums["nll"] = nll.float().sum() * weight
    sums["tokens"] = torch.tensor(batch.num_tokens * weight)
    return losses.sum() * weight * scale, sums


def sft_batch(model: Any, data: PairSet, pad_id: int, scale: float, micro: Micro) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed NLL of the chosen completions (scaled to the global batch's token count)."""
    indices, weight = micro
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
    with no_adapter, accelerator.autocast():  # one autocast region: each weight is cast once for the pass
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
def validation_statistics(
    accelerator: Any, model: Any, data: PairSet, objective: Objective, batch_size: int
) -> dict[str, float]:
    """The objective's statistics of the current model on the validation split, keys prefixed `val/`."""
    start = time.perf_counter()
    model.eval()
    sums = None
    with accelerator.autocast():  # one autocast region: each weight is cast once for the pass
        for micro in whole_split(data.lengths, batch_size, accelerator):
            _, batch_sums = objective.batch(model, data, "val", 0.0, micro)
            sums = add_sums(sums, on_device(batch_sums, accelerator.device))
    model.train()
    totals = reduce_sums(accelerator, sums)
    seconds = time.perf_counter() - start
    speed = {"val/pairs/s": totals["pairs"] / seconds, "val/tokens/s": totals["tokens"] / seconds}
    return {**objective.means(totals, "val/"), **speed}
