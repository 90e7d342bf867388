"""Class 5 of issue 12, killed mid-write: real processes, real signals.

A writer killed by SIGKILL cannot clean up, so its hidden temporary stays;
the next write of the same target removes it (but never the temporary of a
writer still alive). SIGTERM is handled like Ctrl-C: the program unwinds, its
temporaries go, and the command ends with one line and status 143 (130 for Ctrl-C).
"""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import SUBPROCESS_ENV, sigint_at_default, tree_digest
from riskdpo.cli import main
from riskdpo.core.fileio import remove_stale_temporaries
from riskdpo.data.situations import load_situations

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, **SUBPROCESS_ENV}

#: A process that starts writing `target` through `atomic_open`, says "ready" and waits to be killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from riskdpo.core.interrupts import sigterm_as_interrupt
    from riskdpo.core.fileio import atomic_open

    with sigterm_as_interrupt():
        try:
            with atomic_open(sys.argv[1]) as handle:
                handle.write("[{\\"half\\": ")
                handle.flush()
                print("ready", flush=True)
                time.sleep(120)
        except KeyboardInterrupt:
            sys.exit(143)
    """
)


def start_writer(target: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert process.stdout.readline().strip() == "ready"
    return process


def has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` holds `path` open. A descriptor listed can close before it is read
    (Python opens and closes files while it starts), so a vanished one counts as not this file;
    a process that has ended holds nothing (the caller's loop then sees it ended)."""
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    target = str(path.resolve())
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}") == target:
                return True
        except FileNotFoundError:
            continue
    return False


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_a_sigkilled_writers_temporary_is_removed_by_the_next_write_of_the_target(tmp_path):
    target = tmp_path / "situations.json"
    writer = start_writer(target)
    writer.kill()
    writer.wait()
    assert len(hidden(tmp_path)) == 1 and not target.exists()  # what a kill leaves behind

    result = CliRunner().invoke(main, ["convert", str(REPO / "data" / "sample_layout2.csv"), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert hidden(tmp_path) == [] and load_situations(target)


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    target = tmp_path / "situations.json"
    writer = start_writer(target)
    try:
        in_use = hidden(tmp_path)
        result = CliRunner().invoke(main, ["convert", str(REPO / "data" / "sample_layout2.csv"), "-o", str(target)])
        assert result.exit_code == 0, result.output
        assert hidden(tmp_path) == in_use  # a concurrent writer keeps its file
    finally:
        writer.kill()
        writer.wait()


def test_sigterm_during_a_write_removes_the_temporary(tmp_path):
    target = tmp_path / "pairs.jsonl"
    writer = start_writer(target)
    assert len(hidden(tmp_path)) == 1
    writer.send_signal(signal.SIGTERM)
    assert writer.wait(timeout=30) == 143
    assert hidden(tmp_path) == [] and not target.exists()


def test_a_stale_folder_moved_aside_goes_back_when_its_target_is_missing(tmp_path):
    """`atomic_dir` moves the old folder to .NAME.PID.x.old just before renaming the new one in;
    a kill between the two renames must not lose the old folder."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    aside = tmp_path / f".final-model.{pid}.abc123.old"
    aside.mkdir()
    (aside / "weights.bin").write_bytes(b"old weights")
    stale = tmp_path / f".final-model.{pid}.def456.tmp"
    stale.mkdir()
    remove_stale_temporaries(tmp_path / "final-model")
    assert (tmp_path / "final-model" / "weights.bin").read_bytes() == b"old weights"
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("signum, status, line", [
    (signal.SIGTERM, 143, "error: stopped by SIGTERM"),
    (signal.SIGINT, 130, "error: interrupted (Ctrl-C)"),
])
def test_a_signal_stops_convert_with_one_line_its_status_and_no_output(tmp_path, signum, status, line):
    source = tmp_path / "many.csv"
    with open(REPO / "data" / "sample_layout2.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(source, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for number in range(20_000):
            writer.writerow({**rows[number % len(rows)], "situation_id": str(number + 1)})
    output = tmp_path / "out" / "situations.json"
    before = tree_digest(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "riskdpo.cli", "convert", str(source), "-o", str(output)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                               preexec_fn=sigint_at_default)
    deadline = time.monotonic() + 60
    while not has_open(process.pid, source):  # wait until it reads the input
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == status, (stdout, stderr)
    assert stderr.strip() == line and "Traceback" not in stderr
    assert tree_digest(tmp_path) == before


def test_pairs_files_are_written_all_or_none(tmp_path):
    """make-pairs writes train and validation pairs together: when the second cannot be written,
    the first is not left behind either."""
    from riskdpo.core.errors import UserError
    from riskdpo.pairs.records import write_pair_files

    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    pairs = [{"prompt": "p", "chosen": "a", "rejected": "b"}]
    try:
        with pytest.raises(UserError, match="val.jsonl: cannot write"):
            write_pair_files([(tmp_path / "train.jsonl", pairs), (locked / "val.jsonl", pairs)])
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["locked"]
