"""The reader on real answers: every answer of tests/data/real_answers/corpus.jsonl (real
Gemma-3, Llama-3.1, Qwen3 and SmolLM2 answers to lottery prompts, labelled by reading before
any parser ran; see its README) is read as its label says, or as pinned below.

Any change of reading fails here: a new rule that reads one answer differently must
either read it as the careful reader did or be pinned, with the reason, in
`PINNED_READINGS`."""

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from riskdpo.data.answers import INVALID_REASONS, read_answer

CORPUS = Path(__file__).parent / "real_answers" / "corpus.jsonl"
RECORDS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
#: Answers the reader reads otherwise than the careful reader: id -> (label, reason) as read, and why.
PINNED_READINGS: dict[str, tuple[str | None, str | None]] = {}


def _read(record: dict):
    finished = {"length": False, "stop": True}.get(record.get("finish_reason"))
    return read_answer(record["text"], record["labels"], finished=finished, reasoning=record.get("reasoning"))


@pytest.mark.parametrize("record", RECORDS, ids=[record["id"] for record in RECORDS])
def test_each_real_answer_is_read_as_a_careful_reader_reads_it(record):
    parsed = _read(record)
    expected = PINNED_READINGS.get(record["id"], (record["expected"], None))
    assert parsed.label == expected[0]
    if parsed.label is None:
        assert parsed.reason in INVALID_REASONS
        assert expected[1] is None or parsed.reason == expected[1]


def test_the_corpus_covers_every_family_and_its_labels_are_options():
    families = defaultdict(int)
    for record in RECORDS:
        families[record["model"].split("/")[-1].split("-")[0].lower()] += 1
        assert record["expected"] is None or record["expected"] in record["labels"]
        assert record["expected"] is not None or record["why"]
    assert {"gemma", "llama", "qwen3", "smollm2"} <= set(families)


def test_no_wrong_label_and_agreement_on_clear_answers():
    """Never a label where the careful reader found none or another; at least 98.5% of clear answers read."""
    wrong = [r["id"] for r in RECORDS if (label := _read(r).label) is not None and label != r["expected"]]
    clear = [r for r in RECORDS if r["expected"] is not None and not r.get("unsure")]
    read = sum(_read(r).label == r["expected"] for r in clear)
    assert wrong == []
    assert read / len(clear) >= 0.985


def test_reading_real_answers_stays_well_under_a_millisecond():
    """Mean time per answer over the corpus (real lengths: about 1,500 characters), best of three."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for record in RECORDS:
            _read(record)
        best = min(best, (time.process_time() - start) / len(RECORDS))
    assert best < 1e-3
