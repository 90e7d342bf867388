"""The pairs a run trains on: read, tokenized, fitted into `max_length`, batched.

A pair file (.jsonl or .json) holds records with prompt, chosen and rejected
text. Prompts are rendered by `riskdpo.pairs.prompting.render_prompt`, the same
function evaluation uses. A pair longer than `max_length` loses the *start* of
its prompt (the options and the question sit at the end); a pair whose
completion alone does not fit is skipped.

The global batches of an epoch come from `length_grouped_order(lengths, global
size, seed)`: a pure function of the seed and the epoch, independent of the
number of processes, which is what makes a resumed run take the same steps.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.pairs.records import read_pair_records
from riskdpo.models.logps import Group, length_grouped_order, tokenize_group
from riskdpo.pairs.prompting import PromptFormat, render_prompt


@dataclass
class PairSet:
    """Tokenized pairs: (prompt ids, [chosen ids, rejected ids]) per pair."""

    groups: list[Group]
    truncated: int  # prompts cut from the left to fit max_length
    skipped: int  # pairs dropped because a completion alone is too long

    @property
    def lengths(self) -> list[int]:
        return [len(prompt) + max(map(len, completions)) for prompt, completions in self.groups]


def load_pairs(path: str | Path) -> list[dict]:
    """Pairs from .jsonl or .json, each checked by `riskdpo.pairs.records.pair_problem`
    (the rules make-pairs applies when it writes them)."""
    source = Path(path)
    if source.is_dir():
        raise UserError(f"{source}: is a directory, not a pairs file (.jsonl or .json)")
    return read_pair_records(source)


def most_common(records: list[dict], key: str) -> str | None:
    """The most frequent non-empty value of `key` among the records, or None."""
    values = Counter(record[key] for record in records if record.get(key))
    return values.most_common(1)[0][0] if values else None


def tokenize_pairs(tokenizer: Any, records: list[dict], fmt: PromptFormat, max_length: int) -> PairSet:
    """Render and tokenize pairs, fitting each into `max_length` tokens."""
    groups, truncated, skipped = [], 0, 0
    for record in records:
        prompt = render_prompt(tokenizer, record["prompt"], fmt)
        prompt_ids, completion_ids = tokenize_group(tokenizer, prompt, [record["chosen"], record["rejected"]])
        room = max_length - max(map(len, completion_ids))
        if room < 1:
            skipped += 1
            continue
        if len(prompt_ids) > room:
            prompt_ids = prompt_ids[-room:]
            truncated += 1
        groups.append((prompt_ids, completion_ids))
    return PairSet(groups, truncated, skipped)


def fit_split(path: str, records: list[dict], tokenizer: Any, fmt: PromptFormat, max_length: int) -> PairSet:
    """Tokenize the pairs of one file; a file none of whose pairs fits is an error."""
    split = tokenize_pairs(tokenizer, records, fmt, max_length)
    if not split.groups:
        raise UserError(f"{path}: no pair fits in --max-length {max_length} (a completion needs it with one prompt token)")
    return split


def fit_report(path: str, split: PairSet, max_length: int) -> str | None:
    """The line telling the user what fitting into `max_length` cost, or None when nothing was cut."""
    if not (split.truncated or split.skipped):
        return None
    return (f"{path}: cut {split.truncated} prompt(s) from the left to fit --max-length {max_length}; "
            f"skipped {split.skipped} pair(s) whose completion alone fills it")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_info(path: str, records: list[dict], split: PairSet) -> dict[str, Any]:
    """What run.json says about a pairs file."""
    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path), "pairs": len(records), "used": len(split.groups),
            "truncated_prompts": split.truncated, "skipped_pairs": split.skipped,
            "sheets": dict(sorted(Counter(str(record.get("sheet") or "unnamed") for record in records).items()))}


def steps_per_epoch(pairs: int, global_size: int) -> int:
    """Optimizer steps in one epoch of `pairs` pairs cut into global batches of `global_size`."""
    return math.ceil(pairs / global_size)


def epoch_batches(data: PairSet, global_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of one epoch: a pure function of the seed and the epoch."""
    return length_grouped_order(data.lengths, global_size, seed=seed * 1000 + epoch)
