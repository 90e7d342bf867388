"""The pair-record contract: what make-pairs writes and train reads.

A pair record is one JSON object with non-empty `prompt`, `chosen` and
`rejected` text, where `chosen` differs from `rejected` (a pair of equal answers
pushes the DPO loss towards nothing and only adds noise); the other keys
(`situation_id`, `sheet`, `rejected_kind`, ...) are provenance and optional.
`pair_problem` is the one rule set: make-pairs checks what it is about to
write, train what it reads (`read_pair_records`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import read_records

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
