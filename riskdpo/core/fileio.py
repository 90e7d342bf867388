"""Writing files so that a failure never leaves half an output behind.

Every output goes to a temporary file in the destination's directory and is
renamed over the destination only once it is complete (`os.replace` is atomic
on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
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
    after it, so `path` is always either the old or the complete new content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = tmp.with_suffix(".old")
    try:
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


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False)
        handle.write("\n")


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    """Write one JSON object per line, atomically."""
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, expect: type = object, what: str = "JSON") -> Any:
    """Parse a JSON file; a `UserError` naming the file (and line) when it cannot.

    `expect` (list or dict) is the type the top level must have; `what` names
    the content in that error ("a JSON array of situations").
    """
    from riskdpo.core.errors import UserError

    source = Path(path)
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{source}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{source}, line {error.lineno}: not JSON ({error.msg})") from None
    if not isinstance(data, expect):
        raise UserError(f"{source}: expected {what}")
    return data


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read a `.jsonl` file (one object a line) or a `.json` array of objects.

    Raises `UserError` naming the file and line when the content is not JSON.
    """
    from riskdpo.core.errors import UserError

    source = Path(path)
    if source.suffix != ".jsonl":
        records = read_json(source, list, "a JSON array of objects")
    elif not source.is_file():
        raise UserError(f"{source}: no such file")
    else:
        records = []
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise UserError(f"{source}, line {number}: not JSON ({error.msg})") from None
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise UserError(f"{source}, record {index + 1}: expected a JSON object")
    return records
