"""A DPO run, with the training loop written out plainly.

`train(TrainConfig(...))` runs these stages and returns OUTPUT_DIR/final-model:

1. Read the pairs and tokenize them (`riskdpo.training.pair_data`); check the
   output folder and the model options before anything is written
   (`run_dir`, `preflight`).
2. Optionally warm up with supervised learning on the chosen completions
   (`sft_epochs`): L = -Σ log π(y_c|x) / Σ|y_c|. The warmed-up model is saved to
   OUTPUT_DIR/sft-model and becomes both the starting point and the reference.
3. Build the policy (`riskdpo.training.policy`): a fresh LoRA adapter (QLoRA on
   a 4-bit base), or the full model with its first blocks frozen. Dropout is off.
4. Reference log-probs, once: with LoRA the adapter is disabled (so the model is
   the base), in full fine-tuning the not-yet-trained model itself serves, so no
   second copy of the model is ever held. Cached in OUTPUT_DIR/reference-logps.pt
   for resuming.
5. The loop (`dpo_loop`), one global batch per optimizer step
   (`riskdpo.training.steps`); the stages share one `RunState`.
   With `objective="sft"` the loop minimises the SFT loss of step 2 instead (the
   warm-up's steps, `steps.Objective`), and no reference is built (no step 4).
6. Save OUTPUT_DIR/final-model (LoRA merged in) and, with LoRA, OUTPUT_DIR/final-adapter
   (PEFT format), each with its README.md model card (`riskdpo.training.model_card`),
   and OUTPUT_DIR/run.json.

Runs in a plain process, or in several under `accelerate launch` (DDP, or FSDP
with configs/fsdp.yaml) or `torchrun` (on machines without CUDA: gloo over CPU
processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import write_json
from riskdpo.models.loading import check_model_path, hide_loading_bars, load_tokenizer, resolve_precision
from riskdpo.models.quantized import available as four_bit_available
from riskdpo.pairs.prompting import PromptFormat
from riskdpo.training import run_dir
from riskdpo.training.attention_backends import training_attention
from riskdpo.training.checkpoint import (
    DamagedCache, Progress, checkpoint_dirs, fingerprint, load_checkpoint, load_reference, newest_intact,
    remove_partial_checkpoints, save_checkpoint, save_reference, save_trainable_only,
)
from riskdpo.training.config import TrainConfig
from riskdpo.training.memory_fit import check_fits
from riskdpo.training.metrics import MetricsLog, truncate_metrics
from riskdpo.training.model_card import model_card
from riskdpo.training.pair_data import epoch_batches, fit_report, fit_split, load_pairs, most_common, split_info
from riskdpo.training.preflight import check_freeze_layers, check_lora_targets
from riskdpo.training.processes import group_timeout, make_accelerator, on_cpu_processes, start_processes
from riskdpo.training.policy import build_model, save_model
from riskdpo.training.steps import (
    Objective, RunState, Trainee, fsdp_on_cpu_processes, make_optimizer, optimizer_step, prepare, reference_logps,
    release, validation_statistics,
)

def cached_reference(run: RunState, model: Any, base: str) -> dict[str, torch.Tensor]:
    """Reference log-probs of every split: from OUTPUT_DIR's cache when it was computed
    from the same reference model and token ids, else computed (before any training
    step, or before a checkpoint is loaded) and cached. A damaged cache is reported and recomputed."""
    splits = {"train": run.data, **({"val": run.val_data} if run.val_data else {})}
    path = run.output / "reference-logps.pt"
    key = fingerprint(base, run.config.lora, {name: split.groups for name, split in splits.items()})
    try:
        reference = load_reference(path, key)
    except DamagedCache as damage:
        run.say(f"{damage}; computing the reference log-probs again")
        reference = None
    if reference is None:
        reference = {name: reference_logps(run.accelerator, model, split, run.config.batch_size, run.config.lora,
                                           run.pad_id)
                     for name, split in splits.items()}
        if run.accelerator.is_main_process:
            save_reference(path, key, reference)
    return reference


# ------------------------------------------------------------- the loops


def supervised_warmup(run: RunState) -> str:
    """Train on the chosen completions for `sft_epochs` (the SFT objective's steps); return the saved model's path."""
    config, accelerator, data = run.config, run.accelerator, run.data
    target = run.output / "sft-model"
    trainee = new_trainee(run, config.model, run.per_epoch * config.sft_epochs)
    objective = Objective("sft", config, run.pad_id)
    step = 0
    for epoch in range(config.sft_epochs):
        for global_batch in epoch_batches(data, run.global_size, config.seed, -1 - epoch):
            step += 1
            _, loss, lr, grad_norm = optimizer_step(run, trainee, objective, global_batch, f"warm-up step {step}")
            run.log.log({"sft/step": step, "sft/epoch": epoch + 1, "sft/loss": loss, "sft/lr": lr, "sft/grad_norm": grad_norm})
    save_model(run, trainee.model, config.model, target)
    release(accelerator, trainee)  # before the DPO model loads
    return str(target)


def new_trainee(run: RunState, base: str, total_steps: int) -> Trainee:
    """The policy built from `base` with its optimizer and schedule, prepared by accelerate."""
    model = build_model(run.config, base, run.precision, run.accelerator)
    return prepare(run.accelerator, model, *make_optimizer(model, run.config, total_steps))


def dpo_loop(run: RunState, trainee: Trainee, objective: Objective, progress: Progress) -> None:
    """The epochs of the run's objective (DPO, or SFT) from `progress` on: step, log, validate, checkpoint.

    Everything a step logs or validates is written before that step's
    checkpoint, so a run resumed from step N rewrites exactly the lines after N.
    """
    from tqdm.auto import tqdm

    config, accelerator, data = run.config, run.accelerator, run.data
    total_steps = run.per_epoch * config.epochs

    def validate() -> dict[str, float]:
        return validation_statistics(accelerator, trainee.model, run.val_data, objective, config.batch_size)

    if run.val_data and progress.step == 0:
        run.log.log({"step": 0, "epoch": 0.0, **validate()})
    bar = tqdm(total=total_steps, initial=progress.step, desc=objective.kind, unit="step", file=sys.stderr,
               disable=not (config.progress and accelerator.is_local_main_process))
    window_start = time.perf_counter()
    for epoch in range(progress.epoch, config.epochs):
        batches = epoch_batches(data, run.global_size, config.seed, epoch)
        for position in range(progress.step_in_epoch if epoch == progress.epoch else 0, len(batches)):
            where = f"step {progress.step + 1} (epoch {epoch + 1})"
            sums, loss, lr, grad_norm = optimizer_step(run, trainee, objective, batches[position], where)
            step_sums = {**sums, "grad_norm": grad_norm, "steps": 1}
            window = {key: progress.window.get(key, 0.0) + value for key, value in step_sums.items()}
            progress = Progress(progress.step + 1, epoch, position + 1, window)
            bar.update(1)
            accuracy = {"acc": f"{sums['rewards/accuracy'] / sums['pairs']:.2f}"} if "rewards/accuracy" in sums else {}
            bar.set_postfix(loss=f"{loss:.4f}", **accuracy)

            at = {"step": progress.step, "epoch": round(epoch + (position + 1) / len(batches), 4)}
            if progress.step % config.log_every == 0 or progress.step == total_steps:
                seconds = time.perf_counter() - window_start
                run.log.log({**at, **objective.means(window), "lr": lr, "grad_norm": window["grad_norm"] / window["steps"],
                             "pairs/s": window["pairs"] / seconds, "tokens/s": window["tokens"] / seconds})
                progress.window, window_start = {}, time.perf_counter()
            due = config.eval_every and progress.step % config.eval_every == 0
            if run.val_data and (due or progress.step == total_steps):
                run.log.log({**at, **validate()})
            if config.save_every and progress.step % config.save_every == 0:
                save_checkpoint(accelerator, config.output_dir, progress, config.keep_checkpoints)
    bar.close()


# ----------------------------------------------------------------- the run


def train(config: TrainConfig) -> Path | None:
    """Run DPO (or SFT, `objective="sft"`) as configured; return OUTPUT_DIR/final-model.

    With `dry_run`, print the run's estimated peak GPU memory
    (`riskdpo.training.memory.estimate_for_run`) and return None, before any
    weights load and without touching OUTPUT_DIR.

    Everything a user can get wrong (options, pair files, the output folder, the
    model path, LoRA targets, a resume with other settings) is refused with a
    `UserError` before anything is written. SIGTERM stops the run like Ctrl-C
    (a KeyboardInterrupt; run.json says "interrupted").
    """
    if config.dry_run:
        from riskdpo.training.memory import estimate_for_run, format_estimate

        print(format_estimate(estimate_for_run(config)))
        return None
    with run_dir.sigterm_interrupts():
        return _train(config)


def _train(config: TrainConfig) -> Path:
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    if not config.progress:
        hide_loading_bars()
    output = Path(config.output_dir)
    records = load_pairs(config.dataset)  # bad files fail before anything slow
    val_records = load_pairs(config.val) if config.val else None
    run_dir.check_output_dir(output)
    check_model_path(config.model)

    # the process group is created here, with the timeout rank 0's final save needs (processes.py)
    precision = resolve_precision(config.precision, start_processes().device.type)
    if config.load_in_4bit and not four_bit_available("cuda"):  # fail now, not after loading the model
        raise UserError("--load-in-4bit needs a CUDA GPU and the bitsandbytes package (pip install bitsandbytes)")
    # accelerate keeps one precision per process; a second run in the same process
    # (a notebook, the tests) may want another. The process group is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = make_accelerator(precision)
    if on_cpu_processes() and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        fsdp_on_cpu_processes(accelerator)
    set_seed(config.seed)
    started, clock = _now(), time.perf_counter()

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    if config.lora:
        check_lora_targets(config.model, config.lora_targets, trust_remote_code=config.trust_remote_code)
    else:
        check_freeze_layers(config.model, config.freeze_layers, trust_remote_code=config.trust_remote_code)
    check_fits(config, precision, accelerator.device)
    fmt = PromptFormat(config.chat_template, config.system, most_common(records, "instruction"),
                       config.chat_template_kwargs)
    data = fit_split(config.dataset, records, tokenizer, fmt, config.max_length)
    val_data = fit_split(config.val, val_records, tokenizer, fmt, config.max_length) if config.val else None
    run = RunState(config, accelerator, tokenizer, precision, data, val_data)
    for split, path in ((data, config.dataset), (val_data, config.val)):
        if split is not None and (line := fit_report(path, split, config.max_length)):
            run.say(line)

    dataset_info = split_info(config.dataset, records, data)
    val_info = split_info(config.val, val_records, val_data) if val_data else None
    settings = run_dir.settings_record(dataclasses.asdict(config), dataset_info["sha256"], val_info and val_info["sha256"])
    lock = run_dir.locked_run_dir(output) if accelerator.is_main_process else contextlib.nullcontext()
    with lock:
        if accelerator.is_main_process and (killed := run_dir.record_if_killed(output, locked=True)):
            run.say(killed)
        run_dir.check_previous_run(output, config)
        resume_from = _resume_point(run) if config.resume else None
        if resume_from is not None:
            run_dir.check_resume_settings(output, settings)
        accelerator.wait_for_everyone()  # every process has checked before the main one writes
        run_info = {
            "config": dataclasses.asdict(config),
            "settings_fingerprint": run_dir.settings_fingerprint(settings),
            "versions": _versions(),
            "prompt_format": fmt.to_json(),
            "response": most_common(records, "response"),
            "dataset": dataset_info,
            "val": val_info,
            "precision": precision,
            "world_size": accelerator.num_processes,
            "distributed": accelerator.distributed_type.value,  # NO, MULTI_GPU (DDP), MULTI_CPU (DDP over gloo), FSDP
            "process_group_timeout_s": (timeout := group_timeout()) and timeout.total_seconds(),
            "global_batch_size": run.global_size,
            "steps": run.per_epoch * config.epochs,
            "resumed_from": str(resume_from) if resume_from else None,
            "status": "running",
            "timings": {"started": started},
        }
        with training_attention(accelerator.device):
            final = _run_and_record(run, run_info, resume_from, clock)
    accelerator.wait_for_everyone()
    return final


def _resume_point(run: RunState) -> Path | None:
    """The newest intact checkpoint; damaged newer ones are named, a run without any starts afresh."""
    resume_from, damage = newest_intact(run.output)
    if damage and resume_from is None:
        raise UserError(f"--resume: no intact checkpoint in {run.output} ({'; '.join(damage)}); "
                        "start over with --overwrite")
    for problem in damage:
        run.say(f"{problem}; resuming from the earlier {resume_from.name}")
    if resume_from is None:
        run.say(f"{run.output}: no checkpoint to resume from; starting from the beginning")
    return resume_from


def _run_and_record(run: RunState, run_info: dict[str, Any], resume_from: Path | None, clock: float) -> Path:
    """Train (warm-up, DPO, final model) with run.json saying how it stands: running,
    then finished, failed (with the error) or interrupted (Ctrl-C, SIGTERM)."""
    config, accelerator, output, timings = run.config, run.accelerator, run.output, run_info["timings"]
    interrupted_wandb_run = _previous_wandb_run_id(output) if resume_from is not None else None
    if accelerator.is_main_process:
        if config.overwrite:
            run_dir.remove_previous_run(output)
        remove_partial_checkpoints(output)
        if resume_from is not None:
            truncate_metrics(output / "metrics.jsonl", int(resume_from.name.split("-")[1]))
    run.log = MetricsLog(output / "metrics.jsonl", active=accelerator.is_main_process, resume=resume_from is not None,
                         wandb_project=config.wandb_project, wandb_run_id=interrupted_wandb_run,
                         config=run_info["config"])
    run_info["wandb_run_id"] = run.log.wandb_run_id

    def record(status: str, **extra: Any) -> None:
        if accelerator.is_main_process:
            write_json(output / "run.json", {**run_info, "status": status, **extra})

    record("running")
    accelerator.wait_for_everyone()
    try:
        base = config.model
        if config.sft_epochs:
            start = time.perf_counter()
            base = str(output / "sft-model")
            if resume_from is None or not (output / "sft-model" / "config.json").exists():
                base = supervised_warmup(run)
            timings["sft_seconds"] = round(time.perf_counter() - start, 3)
            from accelerate.utils import set_seed

            set_seed(config.seed)  # the DPO model starts alike whether the warm-up ran now or before a resume

        trainee = new_trainee(run, base, run.per_epoch * config.epochs)
        save_trainable_only(accelerator)

        objective = Objective("sft", config, run.pad_id)
        if config.objective == "dpo":
            start = time.perf_counter()
            objective = Objective("dpo", config, run.pad_id, cached_reference(run, trainee.model, base))
            timings["reference_seconds"] = round(time.perf_counter() - start, 3)

        progress = load_checkpoint(accelerator, resume_from) if resume_from else Progress()
        start = time.perf_counter()
        dpo_loop(run, trainee, objective, progress)
        timings["train_seconds"] = round(time.perf_counter() - start, 3)
        final = output / "final-model"
        save_model(run, trainee.model, base, final, adapter_target=output / "final-adapter",
                   card=model_card(run_info), adapter_card=model_card(run_info, adapter=True))
    except KeyboardInterrupt as stop:
        stopped_by = signal.Signals(getattr(stop, "signal_number", signal.SIGINT)).name
        record("interrupted", error=f"stopped by {stopped_by}",
               checkpoints=[path.name for path in checkpoint_dirs(output)])
        run.log.close(failed=True)
        raise
    except BaseException as error:
        record("failed", error=str(error))
        run.log.close(failed=True)
        raise
    run.log.close()
    timings.update(finished=_now(), total_seconds=round(time.perf_counter() - clock, 3))
    record("finished")
    return final


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
    return (run_dir.previous_run(output) or {}).get("wandb_run_id")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
