"""Class 1 of issue 12, where output goes: every writing command refuses an
output it cannot write, or one that would destroy its input, before doing any
work: exit status 2, one line naming the output, and the file system as it was.

Real places: a path under an existing file, a folder made immutable with
`chattr +i` (which stops root too; tests run as root, so plain permission bits
would not), /proc (which takes no new files), and the input file itself.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import assert_refused, tree_digest
from riskdpo.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(tmp_path):
    """Inputs every command can read: a layout-2 CSV, its situations.json, a JSON row dump, a workbook."""
    shutil.copy(REPO / "data" / "sample_layout2.csv", tmp_path / "rows.csv")
    shutil.copy(REPO / "data" / "sample.xlsx", tmp_path / "book.xlsx")
    converted = CliRunner().invoke(main, ["convert", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "situations.json")])
    assert converted.exit_code == 0, converted.output
    (tmp_path / "notes.txt").write_text("a plain file, not a folder\n")
    return tmp_path


def commands(space: Path, output: str) -> dict[str, list[str]]:
    """Each writing command with `output` (a file name for file outputs, a folder for folder outputs)."""
    situations = str(space / "situations.json")
    return {
        "convert": ["convert", str(space / "rows.csv"), "-o", f"{output}.json"],
        "make-pairs": ["make-pairs", situations, "-o", f"{output}.jsonl"],
        "generate": ["generate", "-o", f"{output}.xlsx", "--situations", "2"],
        "eval-choices": ["eval-choices", "--model", "tiny", "--situations", situations, "-o", f"{output}.json"],
        "report": ["report", str(space / "run"), "-o", output],
        "tiny-model": ["tiny-model", output, "--situations", situations],
        "demo": ["demo", "--out", output, "--model", "tiny", "--data", str(space / "book.xlsx")],
    }


def refused(space: Path, args: list[str], *words: str) -> None:
    before = tree_digest(space)
    result = CliRunner().invoke(main, args)
    assert_refused(result, *words)
    assert tree_digest(space) == before, args[0]


@pytest.mark.parametrize("command", list(commands(Path("."), "x")))
def test_an_output_under_an_existing_file_is_refused(workspace, command):
    args = commands(workspace, str(workspace / "notes.txt" / "out"))[command]
    refused(workspace, args, "notes.txt is a file, not a folder")


@pytest.mark.parametrize("command", list(commands(Path("."), "x")))
def test_an_output_in_a_folder_that_takes_no_files_is_refused(workspace, command):
    args = commands(workspace, "/proc/riskdpo-out")[command]
    refused(workspace, args, "/proc/riskdpo-out", "cannot write in folder /proc")


@pytest.mark.parametrize("command", list(commands(Path("."), "x")))
def test_an_output_in_an_immutable_folder_is_refused(workspace, command):
    locked = workspace / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        refused(workspace, commands(workspace, str(locked / "sub" / "out"))[command], "cannot write in folder", "locked")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)


@pytest.mark.parametrize(
    "args, words",
    [
        (["convert", "{space}/situations.json", "-o", "{space}/situations.json"], ["situations.json: is also an input"]),
        (["make-pairs", "{space}/situations.json", "-o", "{space}/situations.json"], ["situations.json: is also an input"]),
        (["eval-choices", "--model", "tiny", "--situations", "{space}/situations.json", "-o", "{space}/situations.json"],
         ["situations.json: is also an input"]),
        (["tiny-model", "{space}/situations.json", "--situations", "{space}/situations.json"], ["situations.json", "is a file"]),
        (["demo", "--out", "{space}/book.xlsx", "--model", "tiny", "--data", "{space}/book.xlsx"], ["book.xlsx", "is a file"]),
    ],
)
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(workspace, args, words):
    refused(workspace, [arg.format(space=workspace) for arg in args], *words)


def test_the_same_file_through_a_link_is_still_the_input(workspace):
    (workspace / "link.json").symlink_to(workspace / "situations.json")
    refused(workspace, ["make-pairs", str(workspace / "situations.json"), "-o", str(workspace / "link.json")], "is also an input")


def test_a_writable_output_passes_the_check_and_is_written(workspace):
    """The check refuses only what cannot work: a fresh nested folder is created and written."""
    output = workspace / "new" / "deeper" / "pairs.jsonl"
    result = CliRunner().invoke(main, ["make-pairs", str(workspace / "situations.json"), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert output.is_file() and not list(output.parent.glob(".*"))


def test_demo_refuses_data_without_a_train_sheet_before_writing_anything(workspace):
    refused(workspace, ["demo", "--out", str(workspace / "demo"), "--model", "tiny", "--data", str(workspace / "rows.csv")],
            "no situations from sheet 'train'")
