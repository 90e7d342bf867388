"""`riskdpo iterate`: the iterative on-policy recipe (sample -> pair -> train -> evaluate) from a config file."""

from __future__ import annotations

import click


@click.command("iterate")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--output-dir", default=None, help="Folder of the rounds (overrides the config's output_dir).")
@click.option("--rounds", type=int, default=None, help="Number of rounds (overrides the config's rounds).")
@click.option("--resume", is_flag=True,
              help="Continue the recipe in --output-dir: its finished rounds (rounds.json) are kept, not redone.")
def iterate(config_path, output_dir, rounds, resume):
    """Run R rounds of: sample answers from the current model, pair right against wrong,
    train from it (DPO + NLL), evaluate; each round's pairs, model and report are kept.

    \b
    Example:
      riskdpo iterate configs/recipes/iterate.yaml --output-dir results/iterate
      riskdpo iterate configs/recipes/iterate.yaml --output-dir results/iterate --rounds 4 --resume
    """
    from riskdpo.commands.config_file import load_config_file
    from riskdpo.recipes.iterate import IterateConfig, run_rounds

    settings = load_config_file(config_path)
    overrides = {"output_dir": output_dir, "rounds": rounds}
    settings = {**settings, **{key: value for key, value in overrides.items() if value is not None}}
    rounds_done = run_rounds(IterateConfig.from_mapping(settings, str(config_path)), say=click.echo, resume=resume)
    click.echo(f"{len(rounds_done)} round{'s' if len(rounds_done) != 1 else ''} done; last model {rounds_done[-1].model}")


COMMANDS = [iterate]
