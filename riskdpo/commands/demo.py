"""`riskdpo demo`: the whole pipeline on the bundled sample and a real model."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--out", "out_dir", default="riskdpo-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for every output of the run.")
@click.option("--model", default="smollm2-135m", show_default=True,
              help="smollm2-135m (bundled, real), tiny (random, seconds), or any model directory / hub id.")
@click.option("--data", default=None, type=click.Path(dir_okay=False),
              help="Workbook with a 'train' sheet and 'test_*' sheets [default: data/sample.xlsx].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling, training and the bootstrap.")
@click.option("--train-situations", type=int, default=None, help="Training situations (one pair each) [default: per model].")
@click.option("--held-out", type=int, default=None, help="Held-out situations to score [default: per model].")
@click.option("--epochs", type=int, default=None, help="DPO epochs [default: per model].")
def demo(out_dir: str, model: str, data: str | None, seed: int, train_situations: int | None,
         held_out: int | None, epochs: int | None) -> None:
    """Run convert -> make-pairs -> eval-choices -> train -> eval-choices and show before/after.

    \b
    Examples:
      riskdpo demo                  # bundled SmolLM2-135M-Instruct, ~15 min on 2 CPU cores
      riskdpo demo --model tiny     # tiny random model: mechanics only, under a minute
    """
    from riskdpo.demo import headline, run_demo, sized

    size = sized(model, train_situations=train_situations, held_out=held_out, epochs=epochs)
    result = run_demo(out_dir, model=model, data=data, size=size, seed=seed, say=click.echo)
    click.echo(headline(result))


COMMANDS = [demo]
