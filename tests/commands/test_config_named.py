"""Issue 27, part 5: a bad --config file is named in the one error line.

A value of the file that is refused (by click's type or by the option's check)
says it was set in the file; a file that is not text, or a folder, is named;
a value given on the command line is not blamed on the file.
"""

import pytest

from helpers import run_cli, write_pairs, choice_pairs


@pytest.fixture
def pairs(tmp_path):
    return write_pairs(tmp_path / "pairs.jsonl", choice_pairs())


def train_with(config, pairs, *extra):
    return run_cli("train", "--config", str(config), "--dataset", str(pairs), "--output-dir",
                   str(config.parent / "run"), *extra)


def one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("text, words", [
    ("epochs: -1\n", ["--epochs -1: must be at least 1", "(set in --config {config})"]),
    ("epochs: many\n", ["'many' is not a valid integer", "(set in --config {config})"]),
    ("loss: hinge-ish\n", ["--loss hinge-ish: choose one of", "(set in --config {config})"]),
], ids=["value", "type", "choice"])
def test_a_refused_value_of_the_file_names_the_file(tmp_path, pairs, text, words):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    line = one_line(train_with(config, pairs))
    for word in words:
        assert word.format(config=config) in line, line
    assert not (tmp_path / "run").exists()


def test_a_value_given_on_the_command_line_is_not_blamed_on_the_file(tmp_path, pairs):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 2\n")
    line = one_line(train_with(config, pairs, "--epochs", "-3"))
    assert "--epochs -3: must be at least 1" in line and "--config" not in line


def test_a_file_that_is_not_text_is_named(tmp_path, pairs):
    config = tmp_path / "run.yaml"
    config.write_bytes(b"\xff\xfe\x00\x81 binary")
    assert f"{config}: not a config file (not UTF-8 text)" in one_line(train_with(config, pairs))
