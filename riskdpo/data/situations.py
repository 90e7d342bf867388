"""The choice-situation model and the situations.json contract.

A situation is one prompt offering 2-5 lotteries, with the label sets each agent
picks (agents and sheets: `docs/data-formats.md`; the file: `docs/pipeline.md`).
`risk_averse` (CARA alpha = 0.01) is the chosen answer for training;
`risk_neutral` (linear) the usual rejected one; `too_risk_averse` (CARA
alpha = 0.10) the second kind of rejected answer. A label set holds several
labels when options tie, and is empty where a sheet lacks the column.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import read_json, write_json


@dataclass(frozen=True)
class Option:
    """One lottery: prizes in dollars with probabilities as fractions summing to 1."""

    label: str
    prizes: tuple[float, ...]
    probs: tuple[float, ...]
    type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "prizes": list(self.prizes), "probs": list(self.probs), "type": self.type}


@dataclass
class Situation:
    """One choice situation, as written to situations.json."""

    situation_id: str
    sheet: str
    prompt: str
    option_labels: list[str]
    labels_as_written: list[str]
    options: list[Option] = field(default_factory=list)
    risk_averse: list[str] = field(default_factory=list)
    risk_neutral: list[str] = field(default_factory=list)
    too_risk_averse: list[str] = field(default_factory=list)
    cooperate: list[str] = field(default_factory=list)
    answer_variants: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_disagreement(self) -> bool:
        """True when the risk-averse and risk-neutral best options share no label."""
        return bool(self.risk_averse) and bool(self.risk_neutral) and not set(self.risk_averse) & set(self.risk_neutral)

    def written(self, label: str) -> str:
        """The label as the prompt writes it, e.g. ``"(b)"`` for ``"b"``."""
        return self.labels_as_written[self.option_labels.index(label)]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["options"] = [option.to_json() for option in self.options]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Situation":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["situation_id"] = str(values["situation_id"])
        values["options"] = [
            Option(o["label"], tuple(o.get("prizes", ())), tuple(o.get("probs", ())), o.get("type"))
            for o in data.get("options", [])
        ]
        return cls(**values)


def situation_digest(seed: int, sheet: str, situation_id: str) -> bytes:
    """sha256 of (seed, sheet, situation id): the source of a per-situation random draw
    (the bucket coin, an option shuffle) that depends neither on the situation's
    position in a list nor on which other situations were sampled."""
    return hashlib.sha256(f"{seed}/{sheet}/{situation_id}".encode()).digest()


def save_situations(situations: list[Situation], path: str | Path) -> None:
    """Write situations.json atomically (a JSON array, one object per situation)."""
    write_json(path, [situation.to_json() for situation in situations])


def load_situations(path: str | Path) -> list[Situation]:
    """Read situations.json; a one-line `UserError` when it is not that format."""
    source = Path(path)
    data = read_json(source, list, "a JSON array of situations")
    situations = []
    for index, item in enumerate(data):
        try:
            situations.append(Situation.from_json(item))
        except (KeyError, TypeError) as error:
            raise UserError(f"{source}, situation {index + 1}: not a situation ({error})") from None
    return situations
