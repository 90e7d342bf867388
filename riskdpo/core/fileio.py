"""Writing files so that a failure never leaves half an output behind.

Every output goes to a temporary file in the destination's directory and is
renamed over the destination only once it is complete (`os.replace` is atomic
on POSIX within one file system). A temporary is named ``.NAME.PID.RANDOM.tmp``
after its target and its writer's process: a writer killed by SIGKILL leaves
it behind, and the next write of the same target removes it
(`remove_stale_temporaries`). `check_output` refuses, before any work, an
output that cannot be written or would overwrite an input.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from riskdpo.core.errors import UserError


#: Suffix of a file being written (and of a folder being built) beside its target.
TEMPORARY_SUFFIX = ".tmp"
#: Suffix of an old folder moved aside by `atomic_dir` just before the new one replaces it.
ASIDE_SUFFIX = ".old"
#: Errors of the machine rather than of the program (full disk, read-only medium,
#: permissions): reported as a `UserError` naming the file, not as a traceback.
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                                 errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EXDEV})


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cannot_write(target: Path, error: OSError) -> UserError:
    return UserError(f"{target}: cannot write ({error.strerror or type(error).__name__})")


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), directory: bool = False) -> Path:
    """`path` as a Path once it is sure a command can write it; else a one-line `UserError`.

    Called by every writing command before it does any work, so that a bad
    output costs nothing and writes nothing. Refused: an output that is a folder
    (a file for `directory` outputs); one under an existing file (``notes.txt/out.json``);
    one whose nearest existing folder does not take a new file (tried for real by
    creating and removing a probe file, because `os.access` answers yes to root
    even on read-only folders); and one that is one of `inputs` (same file by
    path, link or hard link), which the write would destroy.
    """
    target = Path(path)
    if not str(path).strip():
        raise UserError("the output path is empty")
    if directory and target.exists() and not target.is_dir():
        raise UserError(f"{target}: is a file; expected a folder")
    if not directory and target.is_dir():
        raise UserError(f"{target}: is a folder; expected a file name")
    for source in inputs:
        if _same_file(Path(source), target):
            raise UserError(f"{target}: is also an input; writing it would destroy the input, choose another output")
    folder = target if directory and target.is_dir() else target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{target}: cannot write there: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".riskdpo-probe.", dir=folder)
    except OSError as error:
        raise UserError(f"{target}: cannot write in folder {folder} ({error.strerror or type(error).__name__})") from None
    os.close(fd)
    os.unlink(probe)
    return target


def _same_file(source: Path, target: Path) -> bool:
    """True when `source` and `target` name one file (resolved path, or one inode)."""
    try:
        if source.resolve() == target.resolve():
            return True
        return source.exists() and target.exists() and os.path.samefile(source, target)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


def _temporary_pattern(target: Path) -> re.Pattern:
    """Names of the temporaries of `target`: ``.NAME.PID.RANDOM.tmp`` (or ``.old``)."""
    return re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[^.]+({re.escape(TEMPORARY_SUFFIX)}|{re.escape(ASIDE_SUFFIX)})")


def _alive(pid: int) -> bool:
    """True while process `pid` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of `path` left by writers that were killed; return them.

    A temporary's name holds its writer's process id, so one whose process is
    gone is stale: nobody will finish or remove it. A stale ``.old`` folder
    (the previous content, moved aside just before a killed replacement) goes
    back to `path` when `path` is missing, so a kill never loses the old output.
    Temporaries of live processes (a concurrent writer) are left alone.
    """
    target = Path(path)
    if not target.parent.is_dir():
        return []
    pattern = _temporary_pattern(target)
    removed = []
    for entry in sorted(target.parent.iterdir()):
        match = pattern.fullmatch(entry.name)
        if not match or _alive(int(match.group(1))):
            continue
        if match.group(2) == ASIDE_SUFFIX and not os.path.lexists(target):
            os.replace(entry, target)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


@contextlib.contextmanager
def _as_user_error(target: Path) -> Iterator[None]:
    """Turn the machine's refusals (full disk, read-only, permissions) into a `UserError` on `target`."""
    try:
        yield
    except OSError as error:
        if error.errno not in _ENVIRONMENT_ERRNOS:
            raise
        raise _cannot_write(target, error) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` on success.

    Stale temporaries of the same target (from killed writers) are removed first.
    """
    target = Path(path)
    with _as_user_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=TEMPORARY_SUFFIX, dir=target.parent)
        os.close(fd)
    try:
        with _as_user_error(target):
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it becomes `path` on success.

    An older folder at `path` is moved aside before the rename and deleted
    after it, so `path` is always either the old or the complete new content
    (after a kill in between, `remove_stale_temporaries` puts the old one back).
    """
    target = Path(path)
    with _as_user_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=TEMPORARY_SUFFIX, dir=target.parent))
    old = tmp.with_suffix(ASIDE_SUFFIX)
    try:
        with _as_user_error(target):
            yield tmp
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """`open` that writes to a temporary file and renames it into place at the end."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def dump_json(handle: Any, data: Any) -> None:
    """`data` as indented JSON and a final newline, to an open text file."""
    json.dump(data, handle, indent=1, ensure_ascii=False)
    handle.write("\n")


def dump_jsonl(handle: Any, records: list[dict]) -> None:
    """One JSON object per line, to an open text file."""
    for record in records:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_open(path) as handle:
        dump_json(handle, data)


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    """Write one JSON object per line, atomically."""
    with atomic_open(path) as handle:
        dump_jsonl(handle, records)


def check_input(path: str | os.PathLike) -> Path:
    """`path` as a Path when it is a readable file; a `UserError` saying what it is instead."""
    source = Path(path)
    if source.is_dir():
        raise UserError(f"{source}: is a folder; expected a file")
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if not os.access(source, os.R_OK):
        raise UserError(f"{source}: cannot read (permission denied)")
    return source


def _json_problem(error: json.JSONDecodeError) -> str:
    """The decoder's complaint, saying "cut short" when the text ends mid-value."""
    if error.pos >= len(error.doc.rstrip()) or error.msg.startswith("Unterminated string"):
        return f"the text ends early, the file may be cut short: {error.msg}"
    return error.msg


def json_document(source: str | os.PathLike, text: str) -> Any:
    """The JSON value of `text`, the whole of `source` (a file, or how to name it); a `UserError`
    naming it, the line and the column when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{source}, line {error.lineno}, column {error.colno}: not JSON ({_json_problem(error)})") from None


def read_json(path: str | os.PathLike, expect: type = object, what: str = "JSON") -> Any:
    """Parse a JSON file; a `UserError` naming the file (and line) when it cannot.

    `expect` (list or dict) is the type the top level must have; `what` names
    the content in that error ("a JSON array of situations").
    """
    source = check_input(path)
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source}: not UTF-8 text") from None
    data = json_document(source, text)
    if not isinstance(data, expect):
        raise UserError(f"{source}: expected {what}")
    return data


def jsonl_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each non-blank line of JSON Lines text.

    Lines end at "\n" (a "\r" before it is dropped) and nowhere else. JSON written
    with ``ensure_ascii=False`` (as `dump_jsonl` and most tools write it) holds
    U+2028, U+2029 and U+0085 raw inside strings, and a model's answer may
    contain them: ``str.splitlines`` would cut such a record in two.
    """
    return [(number, line.rstrip("\r")) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


def json_line(source: str | os.PathLike, number: int, line: str) -> Any:
    """The JSON value of line `number` of `source`; a `UserError` naming the file, line and column when it is not JSON."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{source}, line {number}, column {error.colno}: not JSON ({_json_problem(error)})") from None


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read a `.jsonl` file (one object a line) or a `.json` array of objects.

    Raises `UserError` naming the file and line when the content is not JSON.
    """
    source = Path(path)
    if source.suffix != ".jsonl":
        records = read_json(source, list, "a JSON array of objects")
    else:
        check_input(source)
        try:
            text = source.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{source}: not UTF-8 text") from None
        records = [json_line(source, number, line) for number, line in jsonl_lines(text)]
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise UserError(f"{source}, record {index + 1}: expected a JSON object")
    return records
