"""`riskdpo train` (DPO fine-tuning) and `riskdpo tiny-model` (a toy model for tests).

Option values are checked by the library (`riskdpo.training.train.validate_config`), so a
bad value gives one `error:` line and exit status 2 like every user error.
The spellings of the original scripts (`--model_name`, `--batch_size`, ...)
are accepted as aliases.
"""

from __future__ import annotations

import os

import click

from riskdpo.commands.config_file import config_option
from riskdpo.training.loss import LOSS_TYPES


@click.command("train")
@config_option
@click.option("--dataset", required=True, help="Pairs file (.jsonl or .json) with prompt, chosen, rejected.")
@click.option("--output-dir", "--output_dir", "output_dir", required=True,
              help="Run folder: final-model/, metrics.jsonl, run.json, checkpoints/.")
@click.option("--model", "--model_name", "model", default="microsoft/phi-2", show_default=True,
              help="Hub id, local directory or short name (smollm2-135m) of the model to fine-tune.")
@click.option("--val", default=None, help="Validation pairs, scored every --eval-every steps and at the end.")
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--batch-size", "--batch_size", "batch_size", type=int, default=4, show_default=True,
              help="Pairs per process per micro-batch; the global batch is this x processes x --grad-accum.")
@click.option("--grad-accum", "--gradient_accumulation_steps", "grad_accum", type=int, default=1, show_default=True,
              help="Micro-batches per optimizer step.")
@click.option("--lr", "--learning_rate", "lr", type=float, default=1e-5, show_default=True, help="Peak learning rate (AdamW).")
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="AdamW weight decay (matrices only).")
@click.option("--warmup-ratio", type=float, default=0.1, show_default=True, help="Fraction of steps of linear warm-up.")
@click.option("--warmup-steps", type=int, default=None, help="Warm-up steps (overrides --warmup-ratio).")
@click.option("--scheduler", default="linear", show_default=True, help="Decay after warm-up: linear or cosine.")
@click.option("--max-grad-norm", type=float, default=1.0, show_default=True, help="Gradient clipping norm; 0 = none.")
@click.option("--seed", type=int, default=2003, show_default=True, help="Seed of initialisation and batch order.")
@click.option("--beta", type=float, default=0.5, show_default=True, help="DPO temperature: how far the policy may move from the reference.")
@click.option("--loss", default="sigmoid", show_default=True, help=f"Loss: {', '.join(LOSS_TYPES)}.")
@click.option("--label-smoothing", type=float, default=0.0, show_default=True,
              help="Assumed fraction of flipped labels (sigmoid: conservative DPO; robust: rDPO).")
@click.option("--sft-epochs", type=int, default=0, show_default=True,
              help="Supervised warm-up epochs on the chosen answers before DPO; the result is the reference.")
@click.option("--lora/--full", "lora", default=True, show_default=True, help="Train a LoRA adapter, or all weights.")
@click.option("--lora-rank", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=float, default=32.0, show_default=True)
@click.option("--lora-dropout", type=float, default=0.0, show_default=True, help="Dropout on the adapter input (0: runs independent of the process split).")
@click.option("--lora-targets", default="all-linear", show_default=True,
              help="Modules to adapt: all-linear or a comma-separated list (q_proj,v_proj).")
@click.option("--freeze-layers", type=int, default=0, show_default=True,
              help="With --full: freeze the embeddings and the first K transformer blocks.")
@click.option("--load-in-4bit", is_flag=True, help="QLoRA: 4-bit base model (needs CUDA and bitsandbytes).")
@click.option("--precision", default="auto", show_default=True, help="auto, bf16, fp16 or fp32 (auto: bf16 on a GPU that has it).")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations in the backward pass to save memory.")
@click.option("--max-length", type=int, default=512, show_default=True,
              help="Tokens per prompt + completion; longer prompts lose their start.")
@click.option("--chat-template/--no-chat-template", default=True, show_default=True,
              help="Wrap prompts in the tokenizer's chat template when it has one.")
@click.option("--system", default=None, help="System message for the chat template.")
@click.option("--trust-remote-code", is_flag=True, help="Allow model code from the hub (off by default).")
@click.option("--save-every", type=int, default=0, show_default=True, help="Checkpoint every N steps (0 = never).")
@click.option("--keep-checkpoints", type=int, default=2, show_default=True, help="Keep the newest K checkpoints (0 = all).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --output-dir.")
@click.option("--log-every", type=int, default=1, show_default=True, help="Write metrics every N steps.")
@click.option("--eval-every", type=int, default=0, show_default=True,
              help="Score --val every N steps (0 = at the start and the end only).")
@click.option("--wandb-project", "--wandb_project", "wandb_project", default=None,
              help="Log to this W&B project (offline when no credentials).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def train(config, **options):
    """Fine-tune a model with DPO on preference pairs (chosen = risk-averse).

    \b
    Several GPUs (DDP):  accelerate launch --multi_gpu --num_processes N -m riskdpo.cli train ...
    FSDP:                accelerate launch --config_file configs/fsdp.yaml -m riskdpo.cli train ...
    CPU processes:       torchrun --nproc_per_node N -m riskdpo.cli train ...

    \b
    Examples:
      riskdpo train --dataset pairs.jsonl --output-dir results-risk-averse --val pairs_val.jsonl
      riskdpo train --dataset pairs.jsonl --output-dir run --model smollm2-135m --epochs 2 --lr 5e-4
      accelerate launch --num_processes 4 -m riskdpo.cli train --dataset pairs.jsonl --output-dir run
    """
    from riskdpo.training.train import TrainConfig
    from riskdpo.training.train import train as run_training

    final = run_training(TrainConfig(**options))
    if os.environ.get("RANK", "0") == "0":  # one line, not one per process
        click.echo(str(final))


@click.command("tiny-model")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--situations", "situations_path", required=True, type=click.Path(dir_okay=False),
              help="situations.json whose prompts and labels train the tokenizer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
def tiny_model(out_dir, situations_path, seed):
    """Build a tiny random phi model with a tokenizer for these situations (tests, smoke runs).

    \b
    Example:
      riskdpo tiny-model tiny --situations situations.json
    """
    from riskdpo.data.situations import load_situations
    from riskdpo.models.tiny import build_tiny_model

    situations = load_situations(situations_path)
    texts = [s.prompt for s in situations] + [label for s in situations for label in (*s.option_labels, *s.labels_as_written)]
    click.echo(str(build_tiny_model(out_dir, texts, seed=seed)))


COMMANDS = [train, tiny_model]
