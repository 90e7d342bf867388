"""`riskdpo make-pairs`: situations.json -> DPO preference pairs."""

from __future__ import annotations

import click

from riskdpo.commands.config_file import config_option
from riskdpo.pairs.build import (
    POLICIES,
    RESPONSES,
    build_pairs,
    find_eligible,
    recipe_summary_lines,
    split_by_situation,
    summary_lines,
)
from riskdpo.pairs.records import output_paths, write_pair_files
from riskdpo.data.situations import load_situations


@click.command("make-pairs")
@config_option
@click.argument("situations_path", metavar="SITUATIONS_JSON", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Pairs file: .jsonl (one object a line) or .json (an array).")
@click.option("--rejected", "policy", type=click.Choice(list(POLICIES)), default="risk-neutral", show_default=True,
              help="Rejected answer: the risk-neutral best, the alpha=0.10 best, or per the low_bucket_label column.")
@click.option("--sample-size", "--sample_size", "sample_size", type=int, default=None,
              help="Number of situations to sample (default: all kept).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample, the bucket coin and the split.")
@click.option("--sheet", "sheets", multiple=True, help="Use only situations from this sheet (repeatable).")
@click.option("--response", type=click.Choice(RESPONSES), default="label", show_default=True,
              help="Answer text: canonical label ('b'), as written in the prompt ('(b)'), or reasoning: the sheet's "
                   "chosen_full/rejected_full (checked), else written from the lotteries.")
@click.option("--instruction", default=None, help="Replace the prompt's closing instruction with this text.")
@click.option("--val-fraction", type=float, default=None, help="Hold out this fraction of situations as validation pairs.")
@click.option("--val-output", type=click.Path(dir_okay=False), default=None,
              help="Validation pairs file (default: <stem>_val<suffix> beside --output).")
@click.option("--augment-variants", type=int, default=0, show_default=True,
              help="Add up to K pairs per situation whose answers are other ways of writing the same labels.")
@click.option("--balance-positions", type=int, default=None, metavar="K",
              help="Render each situation with up to K rotations of its lotteries over the option lines, so that "
                   "every line is chosen (and rejected) equally often; K >= options: all rotations.")
def make_pairs(config, situations_path, output, policy, sample_size, seed, sheets, response, instruction,
               val_fraction, val_output, augment_variants, balance_positions):
    """Turn SITUATIONS_JSON into preference pairs: chosen = the risk-averse answer.

    A situation is kept when the rejected agent's best options are known and
    share no label with the risk-averse best; ties take the first option in
    prompt order. With --val-fraction, validation pairs come from situations
    the training pairs never use. With --response cot, the sheet's reasoning
    is kept only where its final answer names the pair's option; without it,
    both answers are written from the lotteries alike.

    \b
    Examples:
      riskdpo make-pairs situations.json --sheet train -o pairs.jsonl --val-fraction 0.1
      riskdpo make-pairs situations.json --rejected bucket --instruction "Output the label of your chosen option only." -o pairs.jsonl
      riskdpo make-pairs situations.json --balance-positions 5 --response cot -o pairs.jsonl
    """
    train_path, val_path = output_paths(output, val_fraction, val_output, inputs=[situations_path])
    situations = load_situations(situations_path)
    eligible = find_eligible(situations, policy, seed=seed, sheets=sheets or None)
    built = build_pairs(
        eligible, sample_size=sample_size, seed=seed, response=response,
        instruction=instruction, augment_variants=augment_variants, balance_positions=balance_positions,
    )  # fmt: skip
    pairs = built.pairs
    train, validation = split_by_situation(pairs, val_fraction, seed) if val_path else (pairs, None)
    write_pair_files([(train_path, train)] + ([(val_path, validation)] if val_path else []))
    for line in summary_lines(eligible, train, validation, sample_size) + recipe_summary_lines(built, balance_positions is not None):
        click.echo(line)
    click.echo(f"wrote {train_path}" + (f" and {val_path}" if val_path else ""))


COMMANDS = [make_pairs]
