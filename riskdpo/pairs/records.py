"""Pairs files: the pair-record contract, and reading and writing them (what make-pairs writes and train reads).

A pair record is one JSON object with non-empty `prompt`, `chosen` and
`rejected` text, where `chosen` differs from `rejected` (a pair of equal answers
pushes the DPO loss towards nothing and only adds noise); the other keys
(`situation_id`, `sheet`, `rejected_kind`, ...) are provenance and optional.
`pair_problem` is the one rule set: make-pairs checks what it is about to
write, train what it reads (`read_pair_records`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_open, check_output, dump_json, dump_jsonl, read_records

#: Output file types, by suffix.
PAIR_SUFFIXES = (".jsonl", ".json")
#: Keys every pair needs, each non-empty text.
PAIR_TEXT_FIELDS = ("prompt", "chosen", "rejected")


def pair_problem(record: Any) -> str | None:
    """What makes `record` unusable as a preference pair, or None when it is sound."""
    if not isinstance(record, dict):
        return "expected a JSON object"
    missing = [key for key in PAIR_TEXT_FIELDS if not (isinstance(record.get(key), str) and record[key].strip())]
    if missing:
        return f"no {' / '.join(missing)} text (every pair needs prompt, chosen and rejected)"
    if record["chosen"].strip() == record["rejected"].strip():
        return f"chosen and rejected are the same answer ({record['chosen'].strip()[:60]!r})"
    return None


def validate_pair_records(records: Sequence[Any], source: str | Path) -> list[dict]:
    """`records` unchanged when every one is a sound pair; else a `UserError` naming `source` and the record.

    Records are numbered from 1 as they appear (the line of a .jsonl file
    without blank lines). An empty list is an error too: nothing to train on.
    """
    if not records:
        raise UserError(f"{source}: the file holds no pairs")
    for number, record in enumerate(records, start=1):
        problem = pair_problem(record)
        if problem:
            where = f", situation {record.get('situation_id')}" if isinstance(record, dict) and record.get("situation_id") else ""
            raise UserError(f"{source}, record {number}{where}: {problem}")
    return list(records)


def read_pair_records(path: str | Path) -> list[dict]:
    """Pairs from a .jsonl (one object a line) or .json (an array) file, checked by `pair_problem`."""
    return validate_pair_records(read_records(path), path)


def check_pairs_path(path: str | Path) -> Path:
    """`path` as a Path when it ends in .jsonl or .json; `UserError` otherwise."""
    target = Path(path)
    if target.suffix.lower() not in PAIR_SUFFIXES:
        raise UserError(f"{target}: pairs are written as .jsonl or .json, not '{target.suffix}'")
    return target


def output_paths(
    output: str | Path, val_fraction: float | None, val_output: str | Path | None, inputs: Sequence[str | Path] = ()
) -> tuple[Path, Path | None]:
    """The train pairs file and, when `val_fraction` is given, the validation file.

    The validation file defaults to ``<stem>_val<suffix>`` beside `output`
    (``pairs.jsonl`` -> ``pairs_val.jsonl``). Both must be .jsonl or .json,
    differ, be writable and be none of `inputs`, checked before anything is
    written (`riskdpo.core.fileio.check_output`).
    """
    train_path = check_output(check_pairs_path(output), inputs=inputs)
    if val_fraction is None:
        return train_path, None
    val_path = check_pairs_path(val_output or train_path.with_name(f"{train_path.stem}_val{train_path.suffix}"))
    if val_path.resolve() == train_path.resolve():
        raise UserError(f"{val_path}: the validation pairs need a file other than --output")
    return train_path, check_output(val_path, inputs=inputs)


def write_pair_files(files: Sequence[tuple[str | Path, list[dict]]]) -> None:
    """Write pairs files ``(path, pairs)``, all or none: one object a line for .jsonl, a JSON array for .json.

    Every file is written to its temporary first; they are renamed into place
    only when all are complete, so a failure never leaves the validation pairs
    without their training pairs.
    """
    with contextlib.ExitStack() as stack:
        for path, pairs in files:
            target = check_pairs_path(path)
            handle = stack.enter_context(atomic_open(target))
            (dump_jsonl if target.suffix.lower() == ".jsonl" else dump_json)(handle, pairs)


def write_pairs(path: str | Path, pairs: list[dict]) -> None:
    """Write one pairs file (.jsonl or .json by extension), atomically."""
    write_pair_files([(path, pairs)])
