"""The settings of a training run: one dataclass, the single source of every default.

`TrainConfig` holds everything a run depends on and is written to run.json as it
is. Each field carries its command-line help in `field(metadata=...)` (see
`setting`), from which `riskdpo train` builds its click options, so a default is
written once. Impossible values are refused when the object is built
(`__post_init__`), with one line naming the option, whether the caller is the
CLI or a notebook.

`RESULT_FREE_SETTINGS` names the settings that cannot change what a run produces
(its weights and its metrics.jsonl): only these may differ when a run is resumed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.pairs.prompting import parse_chat_template_kwargs
from riskdpo.training.loss import LOSS_TYPES

SCHEDULERS = ("linear", "cosine")
#: What a run optimises: DPO on the pairs, or supervised cross-entropy on their chosen responses.
OBJECTIVES = ("dpo", "sft")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

#: Settings a resumed run may change: how the run is shown, kept and where it is
#: mirrored, never what it computes. Everything else must match the interrupted run.
RESULT_FREE_SETTINGS = ("output_dir", "progress", "wandb_project", "save_every", "keep_checkpoints", "resume",
                        "overwrite", "dry_run", "force")


def setting(default: Any = dataclasses.MISSING, help: str | None = None, *, aliases: tuple[str, ...] = (),
            off: str | None = None, flag: bool = False) -> Any:
    """A dataclass field with its command-line form.

    `aliases`: further spellings of the option (`--batch_size`); `off`: for a
    boolean, the flag that turns it off (`--full` beside `--lora`); `flag`: a
    boolean switched on by its bare flag (`--resume`).
    """
    return dataclasses.field(default=default, metadata={"help": help, "aliases": aliases, "off": off, "flag": flag})


@dataclass
class TrainConfig:
    """Everything a run depends on; written to run.json as it is."""

    dataset: str = setting(help="Pairs file (.jsonl or .json) with prompt, chosen, rejected.")
    output_dir: str = setting(help="Run folder: final-model/, metrics.jsonl, run.json, checkpoints/.",
                              aliases=("--output_dir",))
    model: str = setting("microsoft/phi-2", "Hub id, local directory or short name (smollm2-135m) of the model to fine-tune.",
                         aliases=("--model_name",))
    val: str | None = setting(None, "Validation pairs, scored every --eval-every steps and at the end.")
    # optimisation
    epochs: int = setting(3)
    batch_size: int = setting(4, "Pairs per process per micro-batch; the global batch is this x processes x --grad-accum.",
                              aliases=("--batch_size",))
    grad_accum: int = setting(1, "Micro-batches per optimizer step.", aliases=("--gradient_accumulation_steps",))
    lr: float = setting(1e-5, "Peak learning rate (AdamW).", aliases=("--learning_rate",))
    weight_decay: float = setting(0.0, "AdamW weight decay (matrices only).")
    warmup_ratio: float = setting(0.1, "Fraction of steps of linear warm-up.")
    warmup_steps: int | None = setting(None, "Warm-up steps (overrides --warmup-ratio).")
    scheduler: str = setting("linear", "Decay after warm-up: linear or cosine.")
    max_grad_norm: float = setting(1.0, "Gradient clipping norm; 0 = none.")
    seed: int = setting(2003, "Seed of initialisation and batch order.")
    # the loss
    objective: str = setting("dpo", "dpo: preference optimisation on the pairs; sft: cross-entropy on the chosen "
                                    "responses alone (no reference model).")
    beta: float = setting(0.5, "DPO temperature: how far the policy may move from the reference.")
    loss: str = setting("sigmoid", f"Loss: {', '.join(LOSS_TYPES)}.")
    label_smoothing: float = setting(0.0, "Assumed fraction of flipped labels (sigmoid: conservative DPO; robust: rDPO).")
    nll_weight: float = setting(0.0, "DPO + W x length-normalised NLL of the chosen response (RPO); 0 = plain DPO.")
    sft_epochs: int = setting(0, "Supervised warm-up epochs on the chosen answers before DPO; the result is the reference.")
    # which weights train
    lora: bool = setting(True, "Train a LoRA adapter, or all weights.", off="--full")
    lora_rank: int = setting(16)
    lora_alpha: float = setting(32.0)
    lora_dropout: float = setting(0.0, "Dropout on the adapter input (0: runs independent of the process split).")
    lora_targets: str = setting("all-linear", "Modules to adapt: all-linear or a comma-separated list (q_proj,v_proj).")
    freeze_layers: int = setting(0, "With --full: freeze the embeddings and the first K transformer blocks.")
    load_in_4bit: bool = setting(False, "QLoRA: 4-bit base model (needs CUDA and bitsandbytes).", flag=True)
    precision: str = setting("auto", "auto, bf16, fp16 or fp32 (auto: bf16 on a GPU that computes it natively, else fp16 with a loss scaler; fp32 on the CPU).")
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass to save memory.", flag=True)
    # data and prompts
    max_length: int = setting(512, "Tokens per prompt + completion; longer prompts lose their start.")
    chat_template: bool = setting(True, "Wrap prompts in the tokenizer's chat template when it has one.",
                                  off="--no-chat-template")
    system: str | None = setting(None, "System message for the chat template.")
    chat_template_kwargs: str | dict[str, Any] | None = setting(
        None, "Chat-template arguments, key=value pairs or a JSON object (enable_thinking=false); stored in run.json "
              "for eval-choices.")
    trust_remote_code: bool = setting(False, "Allow model code from the hub (off by default).", flag=True)
    # bookkeeping
    save_every: int = setting(0, "Checkpoint every N steps (0 = never).")
    keep_checkpoints: int = setting(2, "Keep the newest K checkpoints (0 = all).")
    resume: bool = setting(False, "Continue from the newest checkpoint in --output-dir.", flag=True)
    overwrite: bool = setting(False, "Replace a finished run in --output-dir (without it, a finished run is never "
                                     "touched).", flag=True)
    log_every: int = setting(1, "Write metrics every N steps.")
    eval_every: int = setting(0, "Score --val every N steps (0 = at the start and the end only).")
    wandb_project: str | None = setting(None, "Log to this W&B project (offline when no credentials).",
                                        aliases=("--wandb_project",))
    progress: bool = setting(True, "Show a progress bar.", off="--no-progress")
    dry_run: bool = setting(False, "Print the estimated peak GPU memory of this run and stop: reads the model's "
                                   "config, its tokenizer and the pairs, loads no weights, writes nothing.", flag=True)

    force: bool = setting(False, "Train even where the memory estimate exceeds the memory available (checked "
                                 "before anything loads: RAM on the CPU, the GPU's free memory on a GPU).", flag=True)

    def __post_init__(self) -> None:
        """Reject impossible option values with one line naming the option."""
        for name in ("dataset", "output_dir", "model", "val"):  # paths may come as Path objects; run.json needs text
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        if isinstance(self.chat_template_kwargs, str):  # the command line's text; run.json keeps the dict
            self.chat_template_kwargs = parse_chat_template_kwargs(self.chat_template_kwargs)
        checks = [
            (self.objective in OBJECTIVES, f"--objective {self.objective}: choose {' or '.join(OBJECTIVES)}"),
            (self.nll_weight >= 0, f"--nll-weight {self.nll_weight}: must not be negative"),
            (self.objective == "dpo" or not (self.nll_weight or self.sft_epochs),
             "--nll-weight and --sft-epochs belong to --objective dpo; with --objective sft, --epochs counts the "
             "supervised epochs"),
            (self.beta > 0, f"--beta {self.beta}: must be greater than 0"),
            (self.loss in LOSS_TYPES, f"--loss {self.loss}: choose one of {', '.join(LOSS_TYPES)}"),
            (0 <= self.label_smoothing < 0.5, f"--label-smoothing {self.label_smoothing}: must be in [0, 0.5)"),
            (self.scheduler in SCHEDULERS, f"--scheduler {self.scheduler}: choose one of {', '.join(SCHEDULERS)}"),
            (self.precision in PRECISIONS, f"--precision {self.precision}: choose {', '.join(PRECISIONS[:-1])} or fp32"),
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (self.grad_accum >= 1, f"--grad-accum {self.grad_accum}: must be at least 1"),
            (self.lr > 0, f"--lr {self.lr}: must be greater than 0"),
            (0 <= self.warmup_ratio <= 1, f"--warmup-ratio {self.warmup_ratio}: must be in [0, 1]"),
            (self.max_length >= 2, f"--max-length {self.max_length}: must be at least 2"),
            (self.sft_epochs >= 0, f"--sft-epochs {self.sft_epochs}: must not be negative"),
            (self.freeze_layers >= 0, f"--freeze-layers {self.freeze_layers}: must not be negative"),
            (self.log_every >= 1, f"--log-every {self.log_every}: must be at least 1"),
            (self.lora_rank >= 1, f"--lora-rank {self.lora_rank}: must be at least 1"),
            (min(self.save_every, self.eval_every, self.keep_checkpoints, self.warmup_steps or 0) >= 0,
             "--save-every, --eval-every, --keep-checkpoints and --warmup-steps must not be negative"),
            (not (self.lora and self.freeze_layers), "--freeze-layers applies to --full fine-tuning, not --lora"),
            (not (self.resume and self.overwrite), "--resume continues a run and --overwrite replaces it; pass one"),
            (self.lora or not self.load_in_4bit, "--load-in-4bit needs --lora: a 4-bit model cannot be trained in full"),
            (all(target.strip() for target in self.lora_targets.split(",")),
             f"--lora-targets {self.lora_targets!r}: name modules separated by commas, or all-linear"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


def result_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings that can change a run's weights or metrics (all but `RESULT_FREE_SETTINGS`)."""
    return {key: value for key, value in dataclasses.asdict(config).items() if key not in RESULT_FREE_SETTINGS}
