"""`riskdpo convert`: choice-situation spreadsheets -> situations.json.

The command only parses options; `riskdpo.data.convert.read_situations` does the
reading and checking and `riskdpo.data.situations.save_situations` the atomic write.
"""

from __future__ import annotations

import click

from riskdpo.commands.config_file import config_option
from riskdpo.data.convert import read_situations, summarize
from riskdpo.core.errors import UserError
from riskdpo.core.fileio import check_output
from riskdpo.data.situations import save_situations


@click.command("convert")
@click.argument("inputs", metavar="[INPUT]...", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--input", "input", multiple=True, type=click.Path(dir_okay=False),
    help="An input file, like the positional INPUT (the seed scripts' spelling); repeatable.",
)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The situations.json to write.")
@click.option(
    "--sheet", multiple=True, metavar="NAME",
    help="Read only this workbook sheet (repeatable). Default: every sheet that holds situations.",
)
@click.option(
    "--verify/--no-verify", default=True, show_default=True,
    help="Recompute each agent's best options from the prizes and report where the sheet disagrees "
    "(warnings, never errors: a sheet may show rounded prizes). Also fills label sets the sheet lacks.",
)
@click.option(
    "--strict/--lenient", default=True, show_default=True,
    help="Strict: the first bad situation is an error. Lenient: skip bad situations and list why.",
)
@config_option
def convert(inputs, input, output, sheet, verify, strict, config):  # noqa: A002 (`input` = the option's name, for --config)
    """Convert choice-situation spreadsheets (.xlsx, .csv, .json row dumps) to situations.json.

    Reads both layouts: one row per option (situation_id, option_index, ...) and
    one row per situation (correct_label, incorrect_label, ...). Situations are
    named after their sheet (for .csv/.json, the file stem). Prints a summary of
    sheets, option counts, disagreements, repairs and problems.

    \b
    Example:
      riskdpo convert data/sample_layout2.csv -o situations.json
      riskdpo convert book.xlsx --sheet train -o train.json
    """
    paths = list(inputs) + list(input)
    if not paths:
        raise UserError("no input file given; pass INPUT (or --input FILE)")
    check_output(output, inputs=paths)
    result = read_situations(paths, sheet=list(sheet) or None, strict=strict, verify=verify)
    save_situations(result.situations, output)
    click.echo(summarize(result, output))


COMMANDS = [convert]
