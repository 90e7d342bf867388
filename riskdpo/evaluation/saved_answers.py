"""Scoring answers saved earlier, without a model (``eval-choices --answers FILE``).

Answers are kept: riskdpo's own per-answer CSV of a generate-mode run, or the
records another tool saved. Reading them again (after the answer reader
improved, or to score another tool's run) needs only the situations they
answer. Each saved answer becomes the record generate mode would have made of
it (`riskdpo.evaluation.generation.answer_record`: the same reader, the same
fields), and the report is built from those records by
`riskdpo.evaluation.summary.build_report`, so rates, intervals, paired
comparisons, the implied alpha, option types and the position-only chooser are
those of a generation run. Re-reading a riskdpo CSV with the same situations,
``--seed`` and ``--bootstrap`` reproduces its report and CSV.

Files (one model per file unless a record names its model):

- **riskdpo's CSV** (``report.csv`` of ``--mode generate``), recognised by its
  columns: ``model``, ``sheet``, ``situation_id``, ``sample``, ``answer``,
  ``new_tokens`` and ``truncated`` (an answer cut at ``--max-new-tokens``).
  Its label columns (``risk_averse``, ``risk_neutral``, ``too_risk_averse``)
  must agree with the situations read, which catches another situations file,
  ``--sheet``, ``--shuffle-options`` or ``--seed``.
- **JSON** (a list of objects), **JSON Lines** (one object a line) or any other
  **CSV**: one record per answer, whose fields `AnswerFields` names (defaults in
  `DEFAULT_FIELDS`, changed with ``--answer-fields id=question_id,text=response``;
  a dotted name reads a nested field, ``choices.0.message.content``).

A record's reasoning text, when the tool kept it apart from the answer
(``reasoning_content``), is read as riskdpo reads a thinking model's answer:
``<think>reasoning</think>answer``, or ``<think>reasoning`` (never closed) when
the answer was cut with nothing after the reasoning. Its finish reason says whether the answer
was cut at the token limit (`CUT_REASONS`) or ended (`ENDED_REASONS`); without
one an answer counts as ended. Without a sample field a situation has one
answer per model.

Refused with one line naming the file and record: no answers, a record without
the id or text field (or without a field mapped explicitly), an id no situation
has (or one that several sheets share, without a sheet field), two answers of a
model to one situation and sample, a finish reason that is neither, a riskdpo
CSV of log-prob choices (it holds no answers).

Situations no answer names are left out of the report and counted under
``situations.skipped`` (`SKIP_NO_ANSWER`); a situation answered by one model
but not another is counted among that model's skips.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import json_document, json_line, jsonl_lines
from riskdpo.data.situations import Situation
from riskdpo.evaluation.generation import answer_record
from riskdpo.evaluation.summary import Evaluation, build_report

#: Why a situation has no record: no saved answer names it.
SKIP_NO_ANSWER = "no saved answer"
#: Finish reasons of an answer that was cut at the token limit (OpenAI/vLLM, Anthropic, Gemini, HF spellings).
CUT_REASONS = ("length", "max_tokens", "max_new_tokens", "max_output_tokens")
#: Finish reasons of an answer the model ended itself.
ENDED_REASONS = ("stop", "eos", "eos_token", "end_turn", "stop_sequence")
#: The columns by which riskdpo's own per-answer CSV is recognised.
RISKDPO_COLUMNS = ("model", "sheet", "situation_id", "sample", "answer", "new_tokens", "truncated", "logps", "skipped")


@dataclass(frozen=True)
class AnswerFields:
    """Where each part of a saved answer record is (a field name, dotted for nested fields; None: absent).

    ``id`` and ``text`` are required; the others optional. ``explicit`` names the
    fields given on the command line: those must be in every record.
    """

    id: str = "situation_id"
    text: str = "answer"
    reasoning: str | None = "reasoning"
    finish: str | None = "finish_reason"
    sample: str | None = "sample"
    model: str | None = "model"
    sheet: str | None = "sheet"
    tokens: str | None = "new_tokens"
    explicit: frozenset[str] = frozenset()


DEFAULT_FIELDS = AnswerFields()
_KEYS = tuple(field.name for field in fields(AnswerFields) if field.name != "explicit")


def parse_answer_fields(specs: Sequence[str]) -> AnswerFields:
    """``--answer-fields`` values (``key=field`` pairs, comma-separated, repeatable) over `DEFAULT_FIELDS`.

    ``reasoning=`` (empty) says the records have no such field.
    """
    mapping: dict[str, str | None] = {}
    for spec in specs:
        for pair in filter(None, (part.strip() for part in spec.split(","))):
            key, equals, name = pair.partition("=")
            key = key.strip()
            if not equals or key not in _KEYS:
                raise UserError(f"--answer-fields {pair!r}: expected KEY=FIELD with KEY one of {', '.join(_KEYS)}")
            if not name.strip() and key in ("id", "text"):
                raise UserError(f"--answer-fields {pair!r}: {key} is required and needs a field name")
            mapping[key] = name.strip() or None
    return replace(DEFAULT_FIELDS, **mapping, explicit=frozenset(k for k, v in mapping.items() if v))


@dataclass(frozen=True)
class SavedAnswer:
    """One saved answer, where it came from (file and record number), and what it answers."""

    where: str
    model: str
    situation_id: str
    sheet: str | None
    sample: int | None
    text: str
    ended: bool
    tokens: int | None
    #: riskdpo CSV only: the row as written (label sets to check, a skip to carry over).
    row: Mapping[str, str] | None = None


# ---------------------------------------------------------------- reading files


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record of a .csv, .json or .jsonl file, where = ``FILE line N`` / ``record N``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--answers {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--answers {path}: cannot read it ({error})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))  # answers may hold \x0b, \x1c...: no splitlines
        for row in reader:
            yield f"{path} line {reader.line_num}", row
    elif suffix == ".jsonl":
        for number, line in jsonl_lines(text):
            yield f"{path} line {number}", json_line(path, number, line)
    elif suffix == ".json":
        data = json_document(f"--answers {path}", text)
        if not isinstance(data, list):
            raise UserError(f"--answers {path}: expected a JSON array of answer records, found a JSON {type(data).__name__}")
        for number, record in enumerate(data, 1):
            yield f"{path} record {number}", record
    else:
        raise UserError(f"--answers {path}: expected a .csv, .json or .jsonl file")


def _field(record: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """(found, value) of a field, a dotted name stepping into nested objects and lists."""
    value: Any = record
    for part in name.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _ended(value: Any, where: str, name: str) -> bool:
    """Whether a finish reason says the answer ended (not cut at the token limit)."""
    if value is None or value == "":
        return True
    reason = str(value).strip().lower()
    if reason in CUT_REASONS:
        return False
    if reason in ENDED_REASONS:
        return True
    raise UserError(
        f"{where}: finish reason {value!r} in {name!r} is neither cut ({', '.join(CUT_REASONS)}) "
        f"nor ended ({', '.join(ENDED_REASONS)})"
    )


def _count(value: Any, where: str, name: str, what: str) -> int | None:
    """A non-negative integer field (sample index, token count), or None when empty."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or str(number) != str(value).strip():
        raise UserError(f"{where}: {what} {value!r} in {name!r} is not a whole number of at least 0")
    return number


def _from_riskdpo_row(where: str, row: Mapping[str, str]) -> SavedAnswer:
    """A saved answer from a row of riskdpo's own CSV."""
    if row["logps"] and not row["answer"]:
        raise UserError(f"{where}: a log-prob choice, not an answer (the CSV of --mode logprob holds no answers to read)")
    return SavedAnswer(
        where=where,
        model=row["model"],
        situation_id=row["situation_id"],
        sheet=row["sheet"],
        sample=_count(row["sample"], where, "sample", "sample"),
        text=row["answer"],
        ended=row["truncated"] != "True",
        tokens=_count(row["new_tokens"], where, "new_tokens", "token count"),
        row=row,
    )


def _from_record(where: str, record: Any, spec: AnswerFields, default_model: str) -> SavedAnswer:
    """A saved answer from a record read with the field names of `spec`."""
    if not isinstance(record, Mapping):
        raise UserError(f"{where}: expected an object (an answer record), found {type(record).__name__}")
    values: dict[str, Any] = {}
    for key in _KEYS:
        name = getattr(spec, key)
        found, value = _field(record, name) if name else (False, None)
        if not found and (key in ("id", "text") or key in spec.explicit):
            hint = f"; name it with --answer-fields {key}=FIELD" if key not in spec.explicit else ""
            raise UserError(f"{where}: no field {name!r} (the answer's {key}){hint}")
        values[key] = value
    if values["id"] is None or isinstance(values["id"], (dict, list)) or str(values["id"]) == "":
        raise UserError(f"{where}: the situation id in {spec.id!r} is empty")
    text = values["text"] if values["text"] is not None else ""  # a tool writes null when nothing followed the reasoning
    reasoning = values["reasoning"]
    if not isinstance(text, str) or not isinstance(reasoning, (str, type(None))):
        bad, name = ("text", spec.text) if not isinstance(text, str) else ("reasoning", spec.reasoning)
        raise UserError(f"{where}: the answer's {bad} in {name!r} is not text")
    ended = _ended(values["finish"], where, spec.finish or "")
    if reasoning:  # an answer cut while reasoning never closed it, as riskdpo's own decoding would show
        text = f"<think>{reasoning}</think>{text}" if text or ended else f"<think>{reasoning}"
    return SavedAnswer(
        where=where,
        model=str(values["model"]) if values["model"] not in (None, "") else default_model,
        situation_id=str(values["id"]),
        sheet=str(values["sheet"]) if values["sheet"] not in (None, "") else None,
        sample=_count(values["sample"], where, spec.sample or "", "sample"),
        text=text,
        ended=ended,
        tokens=_count(values["tokens"], where, spec.tokens or "", "token count"),
    )


def read_saved_answers(path: str | Path, spec: AnswerFields = DEFAULT_FIELDS) -> list[SavedAnswer]:
    """Every answer of one file, in file order (riskdpo's CSV by its columns, others by `spec`).

    Records without a model field are named after the file (its name without
    the extension).
    """
    source = Path(path)
    answers: list[SavedAnswer] = []
    for where, record in _records(source):
        if isinstance(record, dict) and all(column in record for column in RISKDPO_COLUMNS) and source.suffix.lower() == ".csv":
            answers.append(_from_riskdpo_row(where, record))
        else:
            answers.append(_from_record(where, record, spec, source.stem))
    if not answers:
        raise UserError(f"--answers {source}: no answers in it")
    return answers


# ---------------------------------------------------------------- answers to records


def _situation_index(situations: Sequence[Situation], source: str) -> tuple[dict, dict]:
    """Positions by (sheet, id) and by id alone (None where several sheets share the id)."""
    by_key = {(s.sheet, s.situation_id): p for p, s in enumerate(situations)}
    by_id: dict[str, int | None] = {}
    for p, s in enumerate(situations):
        by_id[s.situation_id] = None if s.situation_id in by_id else p
    return by_key, by_id


def _position(answer: SavedAnswer, situations: Sequence[Situation], by_key: dict, by_id: dict, source: str) -> int:
    """The position of the situation an answer answers, or why it has none."""
    if answer.sheet is not None:
        position = by_key.get((answer.sheet, answer.situation_id))
        if position is None:
            raise UserError(f"{answer.where}: situation {answer.situation_id!r} of sheet {answer.sheet!r} is not in {source}")
        return position
    if answer.situation_id not in by_id:
        raise UserError(f"{answer.where}: situation {answer.situation_id!r} is not in {source}")
    position = by_id[answer.situation_id]
    if position is None:
        sheets = sorted(s.sheet for s in situations if s.situation_id == answer.situation_id)
        raise UserError(
            f"{answer.where}: situation {answer.situation_id!r} is in sheets {', '.join(sheets)} of {source}; "
            "name the sheet with --answer-fields sheet=FIELD"
        )
    return position


def _check_labels(answer: SavedAnswer, situation: Situation) -> None:
    """A riskdpo CSV row's label sets must be the situation's: else its answers refer to other situations."""
    for column in ("risk_averse", "risk_neutral", "too_risk_averse"):
        written = answer.row[column].split() if answer.row else []
        if answer.row and column in answer.row and written != list(getattr(situation, column)):
            raise UserError(
                f"{answer.where}: situation {situation.situation_id!r} has {column} {' '.join(getattr(situation, column)) or '-'} "
                f"but the CSV says {' '.join(written) or '-'} (other situations, --sheet, --shuffle-options or --seed?)"
            )


def answers_to_records(
    answers: Sequence[SavedAnswer], situations: Sequence[Situation], source: str = "the situations"
) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """The models (in order of first answer) and each model's records, as generate mode makes them.

    Records carry ``position`` (in `situations`) and ``sample`` (the saved
    index, or 0), like `riskdpo.evaluation.evaluate.score_model`'s.
    """
    by_key, by_id = _situation_index(situations, source)
    seen: dict[tuple[str, int, int], str] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:
        position = _position(answer, situations, by_key, by_id, source)
        situation = situations[position]
        _check_labels(answer, situation)
        sample = answer.sample or 0
        key = (answer.model, position, sample)
        if key in seen:
            hint = "" if answer.sample is not None else "; several samples need a sample field (--answer-fields sample=FIELD)"
            raise UserError(
                f"{answer.where}: a second answer of {answer.model} to situation {situation.situation_id!r} "
                f"sample {sample} (the first at {seen[key]}){hint}"
            )
        seen[key] = answer.where
        skipped = (answer.row or {}).get("skipped") or None
        record: dict[str, Any] = {"position": position, "sample": sample, "skipped": skipped}
        if skipped is None:
            record.update(answer_record(situation, answer.text, answer.tokens, answer.ended))
        records.setdefault(answer.model, []).append(record)
    return list(records), records


@dataclass(frozen=True)
class AnswersSource:
    """Stands for a model's prompt format in the report: the answers were read from files, the format is theirs."""

    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"source": "saved answers", "files": list(self.files)}


def evaluate_saved_answers(
    paths: Sequence[str | Path],
    situations: Sequence[Situation],
    *,
    spec: AnswerFields = DEFAULT_FIELDS,
    names: Sequence[str] = (),
    bootstrap: int = 0,
    seed: int = 0,
    selection: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    source: str = "the situations",
) -> Evaluation:
    """The eval-choices report (as generate mode builds it) of the answers saved in `paths`.

    `seed` and `bootstrap` are those of `riskdpo.evaluation.evaluate.EvalOptions`
    (the bootstrap intervals); `selection` what `select_situations` left out;
    `source` names the situations in messages.
    """
    from riskdpo.evaluation.formats import short_names

    if not paths:
        raise UserError("give at least one --answers file")
    answers = [answer for path in paths for answer in read_saved_answers(path, spec)]
    models, records = answers_to_records(answers, situations, source)
    answered = sorted({record["position"] for model in models for record in records[model]})
    kept = list(situations)
    selection = dict(selection or {"total": len(situations), "skipped": {}, "sample": None, "selected": len(situations)})
    if len(answered) < len(situations):  # situations nobody answered leave the report, counted
        renumber = {old: new for new, old in enumerate(answered)}
        kept = [situations[p] for p in answered]
        records = {m: [{**r, "position": renumber[r["position"]]} for r in records[m]] for m in models}
        selection["skipped"] = {**selection["skipped"], SKIP_NO_ANSWER: len(situations) - len(answered)}
        selection["selected"] = len(kept)
    for model in models:  # a situation another model answered: skipped for this one
        missing = set(range(len(kept))) - {record["position"] for record in records[model]}
        records[model] += [{"position": p, "sample": 0, "skipped": SKIP_NO_ANSWER} for p in sorted(missing)]
        records[model].sort(key=lambda record: (record["position"], record["sample"]))
    files = tuple(str(path) for path in paths)
    evaluation = build_report(
        models, short_names(models, names), [AnswersSource(files)] * len(models), kept,
        [records[m] for m in models], mode="generate", bootstrap=bootstrap, seed=seed, selection=selection,
        config=config or {},
    )  # fmt: skip
    evaluation.report["processes"] = 1
    evaluation.records = records
    return evaluation

