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
import math
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
        """A situation from its JSON object; `ValueError` naming the field when one is missing or malformed.

        Only the shape is checked here; `situation_problem` checks the content.
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, not {_json_type(data)}")
        missing = [name for name in REQUIRED_FIELDS if name not in data]
        if missing:
            raise ValueError(f"missing field {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if not isinstance(values["situation_id"], (str, int)) or isinstance(values["situation_id"], bool):
            raise ValueError(f"situation_id is {_json_type(values['situation_id'])}, expected text")
        values["situation_id"] = str(values["situation_id"])
        options = data.get("options", [])
        if not isinstance(options, list) or not all(isinstance(option, dict) and "label" in option for option in options):
            raise ValueError("options must be a list of objects with a label")
        try:
            values["options"] = [
                Option(o["label"], tuple(o.get("prizes") or ()), tuple(o.get("probs") or ()), o.get("type")) for o in options
            ]
        except TypeError:
            raise ValueError("an option's prizes or probs are not lists") from None
        return cls(**values)


#: Fields every situation object must have.
REQUIRED_FIELDS = ("situation_id", "sheet", "prompt", "option_labels", "labels_as_written")
#: Label-set fields: each a list of option labels.
LABEL_SET_FIELDS = ("risk_averse", "risk_neutral", "too_risk_averse", "cooperate")
#: How far a lottery's probabilities may sum from 1 (percents written to two decimals).
PROBABILITY_TOLERANCE = 1e-6


def _json_type(value: Any) -> str:
    return {type(None): "null", bool: "true/false", dict: "an object", list: "a list", str: "text"}.get(type(value), "a number")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def situation_problem(situation: Situation) -> str | None:
    """What makes `situation` unusable, or None when it is sound.

    The one set of rules every reader applies (`riskdpo convert` to what it
    builds, and `load_situations` for make-pairs, train and eval-choices), so
    that no stage passes on a situation another would refuse: text id, sheet
    and prompt; 2 or more distinct option labels with their written forms;
    every label of a label set (risk_averse, ...) an option of the prompt;
    options, when present, one lottery per label with finite prizes and
    probabilities in [0, 1] summing to 1.
    """
    if not _is_text(situation.situation_id):
        return "situation_id is empty"
    for name in ("sheet", "prompt"):
        value = getattr(situation, name)
        if not isinstance(value, str) or (name == "prompt" and not value.strip()):
            return f"{name} is {_json_type(value)}, expected text" if not isinstance(value, str) else f"{name} is empty"
    labels, written = situation.option_labels, situation.labels_as_written
    if not isinstance(labels, list) or len(labels) < 2 or not all(_is_text(label) for label in labels):
        return "option_labels must list 2 or more labels"
    if len(set(labels)) != len(labels):
        return f"option_labels repeats a label ({', '.join(labels)})"
    if not isinstance(written, list) or len(written) != len(labels) or not all(_is_text(label) for label in written):
        return f"labels_as_written must give one written form per option label ({len(labels)})"
    for name in LABEL_SET_FIELDS:
        values = getattr(situation, name)
        if not isinstance(values, list):
            return f"{name} is {_json_type(values)}, expected a list of labels"
        stray = [value for value in values if value not in labels]
        if stray:
            return f"{name} names {stray[0]!r}, which is not an option of the prompt ({', '.join(labels)})"
    if situation.options:
        if [option.label for option in situation.options] != labels:
            return f"options are labelled {[option.label for option in situation.options]}, expected {labels}"
        for option in situation.options:
            problem = _lottery_problem(option)
            if problem:
                return f"option {option.label}: {problem}"
    if not isinstance(situation.answer_variants, dict) or not all(
        isinstance(variants, list) and all(isinstance(v, str) for v in variants) for variants in situation.answer_variants.values()
    ):
        return "answer_variants must map labels to lists of text"
    if not isinstance(situation.meta, dict):
        return f"meta is {_json_type(situation.meta)}, expected an object"
    return None


def _lottery_problem(option: Option) -> str | None:
    """What is wrong with an option's lottery, or None (also for an option whose lottery is unknown)."""
    if not option.prizes and not option.probs:
        return None
    if len(option.prizes) != len(option.probs) or not option.prizes:
        return f"{len(option.prizes)} prizes but {len(option.probs)} probabilities"
    if not all(_is_number(value) for value in (*option.prizes, *option.probs)):
        return "prizes and probabilities must be finite numbers"
    if any(not 0 <= p <= 1 for p in option.probs) or abs(sum(option.probs) - 1) > PROBABILITY_TOLERANCE:
        return f"probabilities {list(option.probs)} do not sum to 1"
    return None


def situation_digest(seed: int, sheet: str, situation_id: str) -> bytes:
    """sha256 of (seed, sheet, situation id): the source of a per-situation random draw
    (the bucket coin, an option shuffle) that depends neither on the situation's
    position in a list nor on which other situations were sampled."""
    return hashlib.sha256(f"{seed}/{sheet}/{situation_id}".encode()).digest()


def save_situations(situations: list[Situation], path: str | Path) -> None:
    """Write situations.json atomically (a JSON array, one object per situation)."""
    write_json(path, [situation.to_json() for situation in situations])


def load_situations(path: str | Path) -> list[Situation]:
    """Read situations.json, checking each situation by `situation_problem`.

    A one-line `UserError` names the file, the situation (its position and id)
    and the problem: no stage after `convert` works on a record `convert`
    would not have written.
    """
    source = Path(path)
    data = read_json(source, list, "a JSON array of situations")
    situations = []
    seen: dict[tuple[str, str], int] = {}
    for number, item in enumerate(data, start=1):
        try:
            situation = Situation.from_json(item)
        except (ValueError, TypeError) as error:
            raise UserError(f"{source}, situation {number}: not a situation ({error})") from None
        problem = situation_problem(situation)
        key = (situation.sheet, situation.situation_id)
        if problem is None and key in seen:
            problem = f"sheet {situation.sheet!r} already has situation_id {situation.situation_id} (situation {seen[key]})"
        if problem:
            raise UserError(f"{source}, situation {number} (id {situation.situation_id}): {problem}")
        seen[key] = number
        situations.append(situation)
    return situations
