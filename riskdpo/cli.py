"""The `riskdpo` command line: a click group over the library.

Each command parses its options and calls library functions; the commands live
in `riskdpo.commands.*`, one module per pipeline stage. Errors a user can cause
(`UserError`) print one line on stderr and exit with status 2, without a
traceback.
"""

from __future__ import annotations

import sys

import click

from riskdpo import __version__
from riskdpo.core.errors import UserError


class RiskdpoGroup(click.Group):
    """A click group that turns `UserError` into one line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


@click.group(cls=RiskdpoGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="riskdpo")
def main() -> None:
    """Fine-tune language models to be risk-averse with DPO, and measure it.

    \b
    Pipeline:
      riskdpo convert       spreadsheets -> situations.json
      riskdpo make-pairs    situations.json -> pairs.jsonl (chosen = risk-averse)
      riskdpo train         DPO fine-tuning -> OUTPUT_DIR/final-model
      riskdpo eval-choices  how often a model picks the risk-averse option
    """


def _register() -> None:
    from riskdpo.commands import convert, demo, evaluate, generate, pairs, report, sample_pairs, training

    for module in (convert, pairs, generate, training, evaluate, report, demo, sample_pairs):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
