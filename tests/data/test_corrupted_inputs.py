"""The promise of issue 12 as a property: whatever a corrupted workbook, CSV
or situations.json holds, `convert` and `make-pairs` either succeed with a
valid output or refuse with one line and exit status 2, leaving no output and
no temporary behind; never a traceback.

Corruptions are drawn by hypothesis from sound files: cells replaced by odd
values (wrong types, lists cut short, Excel's longest text, labels that are no
option), bytes of the .xlsx zip overwritten or cut off, characters of a CSV
inserted or deleted, fields of situations.json replaced by random JSON or the
file cut short. Examples are few and run in-process, to stay within seconds.
"""

import json
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskdpo.cli import main
from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.situations import load_situations
from riskdpo.pairs.records import read_pair_records
from test_convert import SITUATION_1, SITUATION_2, SITUATION_3, layout1_rows, layout2_row, write_csv, write_xlsx

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROWS = layout1_rows(SITUATION_1) + layout1_rows(SITUATION_2) + layout1_rows(SITUATION_3)
COLUMNS = list(ROWS[0])

#: Text that sheets really hold when they go wrong.
TRICKY_TEXT = ["", " ", "[1,", "[]", '["z"]', "-1", "-3", "TRUE", "nan", "inf", "1e400", "[1e400, 0]", "[50, 60]",
               "(a)", "a.", "x" * 32_767, "a\nb", '"', "'", "None", "0.5", "[0.0]", "a, (a), a."]
cell_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(TRICKY_TEXT),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
)
edits = st.lists(st.tuples(st.integers(0, len(ROWS) - 1), st.sampled_from(COLUMNS), cell_values), min_size=1, max_size=4)


def workbook_bytes(rows) -> bytes:
    """The bytes of a workbook of `rows`, made once: openpyxl stamps the time, so every save differs."""
    with tempfile.TemporaryDirectory() as folder:
        return write_xlsx(Path(folder) / "book.xlsx", {"train": rows}).read_bytes()


BOOK = workbook_bytes(ROWS)


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def assert_kept_the_promise(result, output: Path, check_output) -> None:
    """Exit 0 with a valid output, or exit 2 with one line and no output; never a traceback or a leftover."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        check_output(output)
    else:
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert not output.exists()
    assert not output.parent.exists() or not [path for path in output.parent.iterdir() if path.name.startswith(".")]


def valid_situations(path: Path) -> None:
    assert load_situations(path)  # the readers' rules: convert never writes what they refuse


def valid_pairs(path: Path) -> None:
    assert read_pair_records(path)


@SETTINGS
@given(edits=edits, strict=st.booleans())
def test_convert_keeps_the_promise_for_any_corrupted_cells(edits, strict):
    rows = [dict(row) for row in ROWS]
    for index, column, value in edits:
        rows[index][column] = value
    with tempfile.TemporaryDirectory() as folder:
        book = write_xlsx(Path(folder) / "book.xlsx", {"train": rows})
        output = Path(folder) / "out" / "situations.json"
        result = run("convert", book, "-o", output, "--strict" if strict else "--lenient")
        assert_kept_the_promise(result, output, valid_situations)


@SETTINGS
@given(data=st.data())
def test_convert_keeps_the_promise_for_any_corrupted_workbook_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        book = Path(folder) / "book.xlsx"
        raw = bytearray(BOOK)
        if data.draw(st.booleans(), label="cut"):
            raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
        else:
            for _ in range(data.draw(st.integers(1, 8), label="changes")):
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        book.write_bytes(bytes(raw))
        output = Path(folder) / "situations.json"
        assert_kept_the_promise(run("convert", book, "-o", output), output, valid_situations)


@SETTINGS
@given(data=st.data())
def test_convert_keeps_the_promise_for_any_corrupted_csv_text(data):
    with tempfile.TemporaryDirectory() as folder:
        source = write_csv(Path(folder) / "rows.csv", [layout2_row(SITUATION_1), layout2_row(SITUATION_3)])
        text = source.read_text(encoding="utf-8")
        for _ in range(data.draw(st.integers(1, 5), label="changes")):
            at = data.draw(st.integers(0, len(text)), label="at")
            if data.draw(st.booleans(), label="insert"):
                text = text[:at] + data.draw(st.sampled_from(['"', ",", "\n", "\x00", "x", "-", "["])) + text[at:]
            else:
                text = text[:at] + text[at + 1:]
        source.write_text(text, encoding="utf-8")
        output = Path(folder) / "situations.json"
        assert_kept_the_promise(run("convert", source, "-o", output), output, valid_situations)


SITUATIONS = [situation.to_json() for situation in generate_situations(GenerateSpec(situations=4, seed=3, cot=True))]
FIELDS = sorted(SITUATIONS[0])
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.sampled_from(["", "a", "b", "z", "(a)"])),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.sampled_from(["label", "a", "b"]), children, max_size=3)),
    max_leaves=6,
)


@SETTINGS
@given(data=st.data(), response=st.sampled_from(["label", "as-written", "cot"]))
def test_make_pairs_keeps_the_promise_for_any_corrupted_situations_file(data, response):
    records = json.loads(json.dumps(SITUATIONS))
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        record = records[data.draw(st.integers(0, len(records) - 1), label="record")]
        field = data.draw(st.sampled_from(FIELDS), label="field")
        if data.draw(st.booleans(), label="delete"):
            record.pop(field, None)
        else:
            record[field] = data.draw(json_values, label="value")
    text = json.dumps(records, indent=1)
    if data.draw(st.booleans(), label="cut"):
        text = text[: data.draw(st.integers(0, len(text) - 1), label="length")]
    with tempfile.TemporaryDirectory() as folder:
        situations = Path(folder) / "situations.json"
        situations.write_text(text, encoding="utf-8")
        output = Path(folder) / "pairs.jsonl"
        result = run("make-pairs", situations, "-o", output, "--response", response)
        assert_kept_the_promise(result, output, valid_pairs)
