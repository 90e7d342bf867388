"""The per-situation CSV as a resume checkpoint (``eval-choices --resume``).

With ``--resume`` every finished batch of answers is added to ``report.csv``
at once: the whole file is rewritten under a temporary name and renamed into
place (`riskdpo.core.fileio.atomic_open`), so a run stopped at any moment,
SIGKILL included, leaves the CSV as it was after some batch, never half a
row. Beside it ``report.resume.json`` holds each model's settings (everything
that changes its answers: mode, decoding, samples, precision, prompt format,
and a digest of the situations) and their fingerprint, a sha256 of them.

A resumed run reads the rows back into the records they were written from
(`row_record`), scores only the (situation, sample) pairs still missing, and
builds its report from all of them; sampling draws per answer
(`riskdpo.evaluation.generation.answer_seed`), so the report equals that of
an uninterrupted run with the same settings. A resume whose settings differ
from the stored ones is refused, naming each setting that changed.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_open, write_json
from riskdpo.data.situations import Situation
from riskdpo.evaluation.summary import csv_row


def situations_digest(situations: Sequence[Situation]) -> str:
    """sha256 of the scored situations as JSON: another selection, shuffle or file gives another digest."""
    text = json.dumps([situation.to_json() for situation in situations], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(settings: dict[str, Any]) -> str:
    """sha256 of a model's settings as canonical JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def row_record(row: dict[str, str], position: int) -> dict[str, Any]:
    """The record a CSV row was written from (`summary.csv_row`), types restored."""
    record: dict[str, Any] = {"position": position, "sample": int(row["sample"]), "skipped": row["skipped"] or None}
    if record["skipped"]:
        return record
    record["label"] = row["choice"] or None
    record["category"] = row["category"]
    record["invalid_reason"] = row["invalid_reason"] or None
    if row["logps"]:
        record["logps"] = json.loads(row["logps"])
        record["label_tokens"] = json.loads(row["label_tokens"]) if row.get("label_tokens") else None
        record["risk_averse_prob"] = float(row["risk_averse_prob"]) if row["risk_averse_prob"] else None
    else:
        record["answer"] = row["answer"]
        record["answer_source"] = row["answer_source"]
        record["rule"] = row.get("rule", "")  # CSVs written before the column was added lack it
        record["reasoning_chars"] = int(row["reasoning_chars"])
        record["new_tokens"] = int(row["new_tokens"])
        record["truncated"] = row["truncated"] == "True"
    return record


class Checkpoint:
    """Rows already written, per model, and the file they are kept in."""

    def __init__(self, csv_path: str | Path, situations: Sequence[Situation], settings: dict[str, dict[str, Any]]):
        self.path = Path(csv_path)
        self.settings_path = self.path.with_suffix(".resume.json")
        self.situations = situations
        self.rows: list[dict[str, Any]] = []
        self.done: dict[str, list[dict[str, Any]]] = {model: [] for model in settings}
        if self.path.is_file():
            self._read_back(settings)
        write_json(self.settings_path, {"models": {m: {"fingerprint": fingerprint(s), "settings": s} for m, s in settings.items()}})

    def _read_back(self, settings: dict[str, dict[str, Any]]) -> None:
        """Load the rows of the models being scored, after checking their settings match."""
        if not self.settings_path.is_file():
            raise UserError(f"--resume: {self.path} has no {self.settings_path.name} beside it; remove it or drop --resume")
        stored = json.loads(self.settings_path.read_text(encoding="utf-8")).get("models", {})
        for model, current in settings.items():
            if model in stored and stored[model]["fingerprint"] != fingerprint(current):
                before = stored[model]["settings"]
                changed = [
                    f"{key} {before.get(key)!r} -> {current.get(key)!r}"
                    for key in sorted(set(before) | set(current))
                    if before.get(key) != current.get(key)
                ]
                raise UserError(
                    f"--resume: {self.path} was made for {model} with other settings ({'; '.join(changed)}); "
                    "remove it or drop --resume"
                )
        positions = {(s.sheet, s.situation_id): p for p, s in enumerate(self.situations)}
        with open(self.path, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                key = (row.get("sheet"), row.get("situation_id"))
                if row.get("model") in stored and row["model"] in self.done and key in positions:
                    self.done[row["model"]].append(row_record(row, positions[key]))
                    self.rows.append({**row, "rule": row.get("rule", "")})

    def add(self, model: str, records: Sequence[dict[str, Any]]) -> None:
        """Add finished records of `model` and rewrite the CSV atomically (`done` keeps what was read back)."""
        self.rows += [csv_row(model, self.situations[r["position"]], r) for r in records]
        with atomic_open(self.path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
