"""`riskdpo train` (DPO fine-tuning) and `riskdpo tiny-model` (a toy model for tests).

The options of `train` are made from the fields of `TrainConfig`
(`riskdpo.training.config`): name, default, type and help are written once, in
the dataclass. Option values are checked by the dataclass (`__post_init__`), so
a bad value gives one `error:` line and exit status 2 like every user error. The
spellings of the original scripts (`--model_name`, `--batch_size`, ...) are
accepted as aliases.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import typing

import click

from riskdpo.commands.config_file import config_option
from riskdpo.training.config import TrainConfig

_CLICK_TYPES = {int: int, float: float, str: str}


def field_option(field: dataclasses.Field, annotation: typing.Any) -> typing.Callable:
    """The click option of one `TrainConfig` field (see `riskdpo.training.config.setting`)."""
    meta = field.metadata
    flag = "--" + field.name.replace("_", "-")
    names = [flag + "/" + meta["off"]] if meta["off"] else [flag, *meta["aliases"]]
    required = field.default is dataclasses.MISSING
    settings: dict[str, typing.Any] = {"help": meta["help"]}
    if meta["flag"]:
        settings.update(is_flag=True, default=field.default)
    elif required:
        settings["required"] = True
    else:
        settings["default"] = field.default
        settings["show_default"] = field.default is not None
        if annotation is not bool:
            kind = next(t for t in typing.get_args(annotation) or (annotation,) if t is not type(None))
            if kind is not str:
                settings["type"] = _CLICK_TYPES[kind]
    return click.option(*names, field.name, **settings)


def config_options(command: typing.Callable) -> typing.Callable:
    """Decorate `command` with one click option per `TrainConfig` field, in the fields' order."""
    hints = typing.get_type_hints(TrainConfig)
    for field in reversed(dataclasses.fields(TrainConfig)):
        command = field_option(field, hints[field.name])(command)
    return command


@click.command("train")
@config_option
@config_options
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
      riskdpo train --dataset pairs.jsonl --output-dir run --full --batch-size 2 --dry-run   # memory estimate only
      accelerate launch --num_processes 4 -m riskdpo.cli train --dataset pairs.jsonl --output-dir run
    """
    from riskdpo.training.run import train as run_training

    try:
        final = run_training(TrainConfig(**options))
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: run.json says "interrupted", checkpoints are kept
        from riskdpo.training.checkpoint import checkpoint_dirs

        number = getattr(stop, "signal_number", signal.SIGINT)
        checkpoints = checkpoint_dirs(options["output_dir"])
        kept = f"continue from {checkpoints[-1]} with --resume" if checkpoints else "no checkpoint was written yet"
        click.echo(f"interrupted by {signal.Signals(number).name}: {kept}", err=True)
        sys.exit(128 + number)
    if final is not None and os.environ.get("RANK", "0") == "0":  # one line, not one per process (None: --dry-run)
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
    from riskdpo.core.errors import UserError
    from riskdpo.core.fileio import check_output
    from riskdpo.data.situations import load_situations
    from riskdpo.models.tiny import build_tiny_model

    check_output(out_dir, directory=True, inputs=[situations_path])
    situations = load_situations(situations_path)
    if not situations:
        raise UserError(f"{situations_path}: holds no situations to train the tokenizer on")
    texts = [s.prompt for s in situations] + [label for s in situations for label in (*s.option_labels, *s.labels_as_written)]
    click.echo(str(build_tiny_model(out_dir, texts, seed=seed)))


COMMANDS = [train, tiny_model]
