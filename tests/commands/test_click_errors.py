"""Class 10 of issue 12: click's own errors (an unknown option, a missing one,
a bad value, an unknown command) are one line like every other error, with
exit status 2, instead of click's three (Usage / Try / Error)."""

import pytest
from click.testing import CliRunner

from helpers import assert_refused, run_cli
from riskdpo.cli import main

CASES = [
    (["convert", "--bogus"], ["No such option '--bogus'", "convert --help"]),
    (["convert", "rows.csv"], ["Missing option '-o' / '--output'", "convert --help"]),
    (["generate", "-o", "x.xlsx", "--situations", "many"], ["'many' is not a valid integer"]),
    (["make-pairs", "s.json", "-o", "p.jsonl", "--rejected", "nobody"], ["'nobody' is not one of"]),
    (["evaluate"], ["No such command 'evaluate'"]),
    (["report"], ["Missing argument 'OUTPUT_DIR'"]),
]


@pytest.mark.parametrize("args, words", CASES, ids=[" ".join(case[0][:2]) for case in CASES])
def test_a_usage_error_is_one_line_and_exit_2(args, words):
    result = CliRunner().invoke(main, args)
    assert_refused(result, *words)
    assert "Usage:" not in result.output and "Try " not in result.output


def test_the_installed_command_line_prints_one_line_too():
    result = run_cli("convert", "--bogus")
    assert_refused(result, "No such option '--bogus'", "riskdpo.cli convert --help")


def test_help_is_still_help():
    bare = CliRunner().invoke(main, [])
    assert bare.exit_code == 0 and bare.stdout.startswith("Usage:") and "make-pairs" in bare.stdout
    command = CliRunner().invoke(main, ["convert", "--help"])
    assert command.exit_code == 0 and "--lenient" in command.stdout and command.stderr == ""
