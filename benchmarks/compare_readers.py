"""riskdpo's answer reader beside another reader, on the real-answer corpus.

Reads every answer of tests/data/real_answers/corpus.jsonl (labelled by reading)
with riskdpo's reader and with a second reader, and prints, per model family,
how many answers each reads as the careful reader did, and how many it reads as
a *wrong* option (a label where the careful reader found none or another).

The second reader is either the choice each record keeps from the users' own
evaluator (``their_choice``, as the published files recorded it), or any Python
file given with ``--their-parser FILE`` that defines
``extract_choice_with_strategy(response, num_options)`` (returning an object with
``.choice``) or ``extract_choice_permissive(response, num_options)``, e.g. the
users' ``answer_parser.py`` downloaded beside this checkout. No code of another
reader is part of riskdpo.

    python benchmarks/compare_readers.py [--corpus FILE] [--their-parser FILE] [--show-differences]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

from riskdpo.data.answers import read_answer

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "real_answers" / "corpus.jsonl"


def family(record: dict) -> str:
    """The row of the table an answer counts in: model family and answer style."""
    return f"{record['model'].split('/')[-1].split('-')[0].lower()} {record['style']}"


def riskdpo_reading(record: dict) -> str | None:
    finished = {"length": False, "stop": True}.get(record.get("finish_reason"))
    return read_answer(record["text"], record["labels"], finished=finished, reasoning=record.get("reasoning")).label


def as_situation_label(choice: str | None, labels: list[str]) -> str | None:
    """A reader's choice among letters *and* numbers as one of the situation's labels ("2" -> "b" for a/b/c)."""
    if choice is None:
        return None
    choice = str(choice).strip().lower()
    if choice in labels:
        return choice
    if choice.isdigit() and labels[0].isalpha() and 1 <= int(choice) <= len(labels):
        return labels[int(choice) - 1]
    if choice.isalpha() and len(choice) == 1 and labels[0].isdigit():
        index = ord(choice) - ord("a")
        return labels[index] if 0 <= index < len(labels) else None
    return None


def parser_from_file(path: Path) -> Callable[[dict], str | None]:
    """A reading function calling the parser defined in the Python file at `path`."""
    spec = importlib.util.spec_from_file_location("their_parser", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the file look their module up
    spec.loader.exec_module(module)
    if hasattr(module, "extract_choice_with_strategy"):
        def extract(text, count):
            return module.extract_choice_with_strategy(text, count).choice
    else:
        extract = module.extract_choice_permissive

    def reading(record: dict) -> str | None:
        return as_situation_label(extract(record["text"], len(record["labels"])), record["labels"])

    return reading


def recorded_reading(record: dict) -> str | None:
    chosen = record.get("their_choice") or {}
    return as_situation_label(chosen.get("choice"), record["labels"])


def compare(records: list[dict], readers: dict[str, Callable[[dict], str | None]]) -> dict[str, dict[str, list[int]]]:
    """Per family and reader: [answers, read as the careful reader, wrong option]."""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: {name: [0, 0, 0] for name in readers})
    for record in records:
        for name, reader in readers.items():
            label = reader(record)
            cell = table[family(record)][name]
            cell[0] += 1
            cell[1] += label == record["expected"]
            cell[2] += label is not None and label != record["expected"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--their-parser", type=Path, help="a Python file with extract_choice_with_strategy")
    parser.add_argument("--show-differences", action="store_true", help="print each answer the two read differently")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    theirs = parser_from_file(args.their_parser) if args.their_parser else recorded_reading
    readers = {"riskdpo": riskdpo_reading, "theirs": theirs}
    table = compare(records, readers)
    print("| family | answers | riskdpo right | riskdpo wrong option | theirs right | theirs wrong option |")
    print("|---|---|---|---|---|---|")
    totals = [0] * 5
    for name in sorted(table):
        ours, other = table[name]["riskdpo"], table[name]["theirs"]
        row = [ours[0], ours[1], ours[2], other[1], other[2]]
        totals = [a + b for a, b in zip(totals, row)]
        print(f"| {name} | " + " | ".join(map(str, row)) + " |")
    print("| all | " + " | ".join(map(str, totals)) + " |")
    if args.show_differences:
        for record in records:
            ours, other = riskdpo_reading(record), theirs(record)
            if ours != other:
                print(f"{record['id']}: careful {record['expected']}, riskdpo {ours}, theirs {other}")


if __name__ == "__main__":
    main()
