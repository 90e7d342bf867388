"""The `riskdpo` command line: a click group over the library.

Each command parses its options and calls library functions; the commands live
in `riskdpo.commands.*`, one module per pipeline stage. Errors a user can cause
print one line on stderr and exit with status 2, without a traceback: a
`UserError` of the library, and click's own usage errors (an unknown option, a
missing argument), which click would print as three lines (Usage / Try / Error).
SIGTERM is handled like Ctrl-C: it raises `KeyboardInterrupt` where the program
is, so every `finally` (temporary files, run records) runs before the exit,
with status 130 for Ctrl-C and 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import sys

import click

from riskdpo.core.version import __version__
from riskdpo.core.errors import UserError
from riskdpo.core.interrupts import sigterm_as_interrupt, was_terminated


#: Exit status of a user error (click's usage errors use it too).
USER_ERROR_STATUS = 2
#: Exit status after a signal, by the shell's convention 128 + signal number.
INTERRUPTED_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def usage_line(error: click.ClickException) -> str:
    """Click's error as one line: the message and where the help is."""
    context = getattr(error, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    return f"error: {error.format_message()}{hint}"


class RiskdpoGroup(click.Group):
    """A click group whose every failure a user can cause is one line on stderr.

    `UserError` and click's usage errors exit with status 2; Ctrl-C and
    SIGTERM print one line and exit with 130 and 143.
    """

    def invoke(self, ctx: click.Context):
        from riskdpo.commands.config_file import config_source

        try:
            return super().invoke(ctx)
        except UserError as error:
            source = config_source(ctx, str(error).split(" ", 1)[0])  # "--epochs -1: ..." names its option first
            click.echo(f"error: {error}" + (f" (set in --config {source})" if source else ""), err=True)
            sys.exit(USER_ERROR_STATUS)
        except click.BadParameter as error:
            source = config_source(ctx, error.param.name if error.param else None)
            if source:
                error.message += f" (set in --config {source})"
            raise

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        with sigterm_as_interrupt():
            try:
                status = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except click.exceptions.NoArgsIsHelpError as error:  # `riskdpo` alone: the help is what was asked for
                click.echo(error.format_message())
                sys.exit(0)
            except click.ClickException as error:
                click.echo(usage_line(error), err=True)
                sys.exit(USER_ERROR_STATUS)
            except (click.Abort, KeyboardInterrupt) as error:
                terminated = was_terminated(error)
                click.echo("error: stopped by SIGTERM" if terminated else "error: interrupted (Ctrl-C)", err=True)
                sys.exit(INTERRUPTED_STATUS[signal.SIGTERM if terminated else signal.SIGINT])
        sys.exit(status if isinstance(status, int) else 0)


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
    from riskdpo.commands import convert, demo, evaluate, generate, iterate, pairs, report, sample_pairs, training

    for module in (convert, pairs, generate, training, evaluate, report, demo, sample_pairs, iterate):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
