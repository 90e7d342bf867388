"""`riskdpo generate`: fresh choice-situation sheets in layout 1 of `docs/data-formats.md`."""

from __future__ import annotations

import click

from riskdpo.commands.config_file import config_option
from riskdpo.core.fileio import check_output
from riskdpo.data.generate import FRAMINGS, KEEP_MODES, STAKES, GenerateSpec, generate_situations
from riskdpo.data.generated_sheet import situations_sheet
from riskdpo.data.workbook import add_sheet


@click.command()
@config_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .xlsx workbook to write.")
@click.option("--situations", "count", type=int, default=100, show_default=True, help="Situations in the sheet.")
@click.option("--stakes", type=click.Choice(list(STAKES)), default="low", show_default=True,
              help="Prize scale: low (about +-$100), medium (thousands), high (up to $500,000), astronomical (up to 1e94).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; the same seed gives the same file.")
@click.option("--framing", type=click.Choice(FRAMINGS), default="plain", show_default=True,
              help="plain lotteries, or social acts typed Cooperate/Steal/Rebel.")
@click.option("--keep", type=click.Choice(KEEP_MODES), default="disagreements", show_default=True,
              help="Keep risk-averse vs risk-neutral disagreements, also situations where only the "
                   "alpha=0.10 best differs (differences), or every draw (all).")
@click.option("--include-agreements", is_flag=True, help="Shorthand for --keep all.")
@click.option("--cot", is_flag=True, help="Add chosen_full/rejected_full chain-of-thought answers.")
@click.option("--sheet", default="situations", show_default=True, help="Name of the sheet to write.")
@click.option("--append", is_flag=True, help="Add the sheet to an existing workbook instead of replacing the file.")
def generate(config, output, count, stakes, seed, framing, keep, include_agreements, cot, sheet, append):
    """Generate random choice situations into sheet SHEET of an .xlsx workbook.

    One row per option (layout 1 of `docs/data-formats.md`) with prompts, prizes, percents,
    expected utilities and every agent's best labels, computed in log space as
    `riskdpo convert --verify` recomputes them. Build a train sheet and held-out
    sheets in one file with --append:

    \b
      riskdpo generate -o data.xlsx --sheet train --situations 240 --seed 1
      riskdpo generate -o data.xlsx --append --sheet test_high --stakes high --seed 2

    \b
    Examples:
      riskdpo generate -o my.xlsx --sheet train --stakes low --situations 1000 --seed 1
      riskdpo generate -o my.xlsx --append --sheet test_high --stakes high --situations 200 --seed 2
    """
    check_output(output)
    spec = GenerateSpec(
        situations=count, stakes=stakes, seed=seed, framing=framing,
        keep="all" if include_agreements else keep, cot=cot, sheet=sheet,
    )  # fmt: skip
    situations = generate_situations(spec)
    sheet_data = situations_sheet(spec, situations)
    add_sheet(output, sheet_data, append=append)
    click.echo(f"wrote {len(situations)} situations ({len(sheet_data.rows)} rows) to sheet '{sheet}' of {output}")


COMMANDS = [generate]
