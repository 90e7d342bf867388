"""eval-choices: how often models pick the risk-averse option, side by side.

The steps, each a function a notebook can call:

1. `read_eval_situations`: a situations.json, or a spreadsheet converted on the
   fly by `riskdpo.data.convert`.
2. `select_situations`: situations without risk-averse labels are skipped and
   counted; `--sample N` keeps a seeded random N of the rest.
3. `model_format`: the prompt format of each model: the run's `run.json`
   (beside the model directory or one level up) when there is one, so that
   evaluation formats prompts exactly as training did, then explicit options;
   `short_names` names each model for tables and figures.
4. `score_model`: each process scores its share of the situations
   (`PartialState.split_between_processes`) by log-probability
   (`riskdpo.evaluation.choices`) or by generating ``--samples`` answers each
   (`riskdpo.evaluation.generation`); the shares are gathered
   (`gather_object`) into one list. With ``--resume`` finished batches go to
   the CSV as they finish (`riskdpo.evaluation.resume`).
5. `riskdpo.evaluation.summary.build_report`: rates, intervals, option types,
   implied alpha, strata and paired comparisons.

Every process computes the same report from the gathered records; only the
main process writes files (`riskdpo.evaluation.report`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from riskdpo.core.errors import UserError
from riskdpo.data.situations import Situation, load_situations
from riskdpo.evaluation.alpha import DEFAULT_BOOTSTRAP
from riskdpo.evaluation.choices import LABEL_SCORE, indistinct_labels, logprob_choices
from riskdpo.evaluation.formats import FormatOverrides, ModelFormat, model_format, read_run_json, short_names
from riskdpo.evaluation.generation import Decoding, generate_records
from riskdpo.evaluation.summary import Evaluation, build_report
from riskdpo.pairs.prompting import render_prompt

MODES = ("logprob", "generate")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
#: Why a situation was not scored.
SKIP_NO_RISK_AVERSE = "no risk-averse labels"
SKIP_INDISTINCT = "option labels tokenize identically"
#: Batches per logprob call under --resume, written to the CSV together. The chunks are cut from the
#: situations still to score, in order, so a resumed run scores the same chunks (same batches,
#: same round-off) as an uninterrupted one.
LOGPROB_CHUNK = 4


@dataclass(frozen=True)
class EvalOptions:
    """How the models are run; everything that changes the numbers is here."""

    mode: str = "logprob"
    batch_size: int = 8
    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    samples: int = 1
    seed: int = 0
    precision: str = "auto"
    bootstrap: int = DEFAULT_BOOTSTRAP
    progress: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--mode {self.mode}: choose logprob or generate")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision {self.precision}: choose {', '.join(PRECISIONS)}")
        minimums = {
            "batch-size": (self.batch_size, 1),
            "max-new-tokens": (self.max_new_tokens, 1),
            "bootstrap": (self.bootstrap, 0),
            "samples": (self.samples, 1),
            "top-k": (self.top_k, 0),
        }
        for name, (value, least) in minimums.items():
            if value < least:
                raise UserError(f"--{name} {value}: must be at least {least}")
        if self.temperature < 0:
            raise UserError(f"--temperature {self.temperature}: must not be negative")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p {self.top_p}: must be above 0 and at most 1")
        if self.samples > 1 and (self.mode != "generate" or self.temperature == 0):
            raise UserError(f"--samples {self.samples}: needs --mode generate and a --temperature above 0")

    @property
    def decoding(self) -> Decoding:
        return Decoding(self.max_new_tokens, self.temperature, self.top_p, self.top_k, self.seed)

    def settings(self) -> dict[str, Any]:
        """What changes a model's answers (not batch size, bootstrap or progress)."""
        fields = ("mode", "max_new_tokens", "temperature", "top_p", "top_k", "samples", "seed", "precision")
        if self.mode == "logprob":  # the scoring rule too, so that no resume mixes choices made by two rules
            return {"mode": self.mode, "precision": self.precision, "label_score": LABEL_SCORE}
        return {name: getattr(self, name) for name in fields}


# ---------------------------------------------------------------- inputs


def read_eval_situations(path: str | Path, sheets: Sequence[str] = ()) -> list[Situation]:
    """Situations from a situations.json, or from a spreadsheet (.xlsx/.csv/row .json) via convert.

    `sheets` picks workbook sheets, or for a situations.json the situations whose
    `sheet` is one of them.
    """
    source = Path(path)
    if source.suffix.lower() == ".json" and _is_situations_json(source):
        situations = load_situations(source)
        if not sheets:
            return situations
        unknown = sorted(set(sheets) - {situation.sheet for situation in situations})
        if unknown:
            present = ", ".join(sorted({situation.sheet for situation in situations}))
            raise UserError(f"{source}: no situations from sheet {unknown[0]!r} (sheets: {present})")
        return [situation for situation in situations if situation.sheet in sheets]
    from riskdpo.data.convert import read_situations

    return read_situations(source, sheet=list(sheets) or None, strict=True).situations


def _is_situations_json(path: Path) -> bool:
    """True when a .json file holds situations (objects with option_labels), not spreadsheet rows."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True  # load_situations reports the error with its line
    return not (isinstance(data, list) and data and isinstance(data[0], dict) and "option_labels" not in data[0])


def select_situations(
    situations: Sequence[Situation], sample: int | None = None, seed: int = 0
) -> tuple[list[Situation], dict[str, Any]]:
    """The situations to score, and what was left out: ``{"total", "skipped", "sample", "selected"}``.

    Situations without risk-averse labels cannot be scored (skipped and
    counted). `sample` keeps a seeded random `sample` of the rest, in their
    original order.
    """
    usable = [situation for situation in situations if situation.risk_averse]
    skipped = {SKIP_NO_RISK_AVERSE: len(situations) - len(usable)} if len(usable) < len(situations) else {}
    if not usable:
        raise UserError("no situation has risk-averse labels, so none can be scored")
    if sample is not None:
        if sample < 1:
            raise UserError(f"--sample {sample}: must be at least 1")
        if sample < len(usable):
            keep = sorted(random.Random(seed).sample(range(len(usable)), sample))
            usable = [usable[i] for i in keep]
    return usable, {"total": len(situations), "skipped": skipped, "sample": sample, "selected": len(usable)}


# ---------------------------------------------------------------- scoring


def score_model(
    model: Any,
    tokenizer: Any,
    situations: Sequence[Situation],
    fmt: ModelFormat,
    options: EvalOptions,
    progress: bool = False,
    done: Collection[tuple[int, int]] = (),
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """One record per (situation, sample) not in `done`: the choice and its evidence, or why it was skipped.

    Records carry their ``position`` in `situations` and ``sample``, and come
    sorted by both. `on_records` receives each finished batch as it finishes.
    """
    from tqdm.auto import tqdm

    work = [(p, k) for p in range(len(situations)) for k in range(options.samples) if (p, k) not in done]
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(work), unit="answer", desc=options.mode, disable=not progress, leave=False)

    def finished(batch: list[dict[str, Any]]) -> None:
        records.extend(batch)
        bar.update(len(batch))
        if on_records and batch:
            on_records(batch)

    prompts = {p: render_prompt(tokenizer, situations[p].prompt, fmt.prompt) for p, _ in work}
    if options.mode == "logprob":
        indistinct = [p for p, _ in work if indistinct_labels(tokenizer, situations[p], fmt.response)]
        finished([{"position": p, "sample": 0, "skipped": SKIP_INDISTINCT} for p in indistinct])
        scorable = [p for p, _ in work if p not in set(indistinct)]
        step = options.batch_size * LOGPROB_CHUNK if on_records else max(len(scorable), 1)
        for chunk in (scorable[i : i + step] for i in range(0, len(scorable), step)):
            chosen = [situations[p] for p in chunk]
            choices = logprob_choices(
                model, tokenizer, chosen, [prompts[p] for p in chunk], fmt.response, batch_size=options.batch_size
            )
            finished([
                {"position": p, "sample": 0, "skipped": None, "label": c.label, "category": c.category,
                 "logps": c.logps, "risk_averse_prob": c.risk_averse_prob, "label_tokens": c.label_tokens}
                for p, c in zip(chunk, choices)
            ])  # fmt: skip
    else:
        pending: list[dict[str, Any]] = []

        def answered(index: int, record: dict[str, Any]) -> None:
            position, sample = work[index]
            pending.append({"position": position, "sample": sample, "skipped": None, **record})
            if len(pending) >= options.batch_size:
                finished(pending[:])
                pending.clear()

        jobs = [(situations[p], k, prompts[p]) for p, k in work]
        generate_records(model, tokenizer, jobs, options.decoding, options.batch_size, answered)
        finished(pending)
    bar.close()
    return sorted(records, key=lambda record: (record["position"], record["sample"]))


def process_state() -> Any:
    """accelerate's process state: one process, or one of several under `accelerate launch`.

    Without a GPU the processes talk over gloo (accelerate's multi-CPU mode,
    started with ``accelerate launch --multi_gpu --num_processes N`` or torchrun).
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def evaluation_precision(models: Sequence[str], precision: str) -> str:
    """The one precision all `models` are scored in (`riskdpo.models.loading.shared_precision`):
    an adapter counts as its base's stored precision."""
    from riskdpo.models.adapters import adapter_base, is_adapter
    from riskdpo.models.loading import shared_precision, stored_precision

    stored = [stored_precision(adapter_base(name) if is_adapter(name) else name) for name in models]
    return shared_precision(precision, str(process_state().device), stored)


def load_scored_model(name: str, precision: str, device: Any) -> tuple[Any, Any]:
    """The model and tokenizer of `name` in `precision` on `device`: a whole model, or a PEFT adapter
    applied unmerged to its base (in 4-bit, as trained, for an adapter of a QLoRA run)."""
    from riskdpo.models.adapters import is_adapter, load_with_adapter, tokenizer_source
    from riskdpo.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(tokenizer_source(name))
    if not is_adapter(name):
        return load_model(name, precision=precision).to(device), tokenizer
    run = read_run_json(name)
    if run and run[0].get("config", {}).get("load_in_4bit"):
        from riskdpo.models.quantized import quantization_config

        place = device.index if device.type == "cuda" else "cpu"
        model = load_with_adapter(name, precision=precision, quantization_config=quantization_config(precision),
                                  device_map={"": place})
        return model, tokenizer
    return load_with_adapter(name, precision=precision).to(device), tokenizer


def _score_everywhere(
    name: str,
    situations: Sequence[Situation],
    fmt: ModelFormat,
    options: EvalOptions,
    precision: str,
    done: Sequence[dict[str, Any]] = (),
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Load `name` in `precision`, score this process's share of what is not `done`, gather every share in order."""
    import torch
    from accelerate.utils import gather_object

    state = process_state()
    model, tokenizer = load_scored_model(name, precision, state.device)
    finished = {(record["position"], record["sample"]) for record in done}
    with state.split_between_processes(list(range(len(situations)))) as share:

        def globally(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{**record, "position": share[record["position"]]} for record in batch]

        show = options.progress and state.is_main_process
        mine = {(local, k) for local, p in enumerate(share) for k in range(options.samples) if (p, k) in finished}
        save = (lambda batch: on_records(globally(batch))) if on_records else None
        local = globally(score_model(model, tokenizer, [situations[i] for i in share], fmt, options, show, mine, save))
    records = gather_object(local) if state.num_processes > 1 else local
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return sorted([*done, *records], key=lambda record: (record["position"], record["sample"]))


def evaluate_choices(
    models: Sequence[str],
    situations: Sequence[Situation],
    *,
    options: EvalOptions = EvalOptions(),
    overrides: FormatOverrides = FormatOverrides(),
    names: Sequence[str] = (),
    selection: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    scored: Evaluation | None = None,
    resume: str | Path | None = None,
    endpoints: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Score every model on the same situations, at one precision, and build the report and CSV rows.

    A model is a model folder or hub id, a PEFT adapter folder (scored on its
    base, unmerged) or a riskdpo run folder (its final-adapter, else its
    final-model: `riskdpo.models.adapters.evaluated_model`). Every model is
    scored in the one precision `evaluation_precision` chooses, stated in the
    report as ``precision``. `selection` is what `select_situations` says it left
    out; `config` the effective options; both are recorded in the report.
    `scored` is an earlier evaluation with the same situations, options and
    format (a base model scored before training): its models' records are reused
    instead of scoring them again, where it was scored at this precision.
    `resume` is the CSV to keep finished batches in and to continue from
    (`riskdpo.evaluation.resume`).
    `endpoints` maps a model to the `riskdpo.evaluation.endpoint.Endpoint`
    that serves it under that name; the others are loaded here (a served model
    has no precision of ours: `precision` is the loaded models').
    """
    from riskdpo.models.adapters import evaluated_model

    if not models:
        raise UserError("give at least one --model")
    models = [evaluated_model(name) for name in models]
    if len(set(models)) < len(models):
        raise UserError("the same --model is given twice")
    shown = short_names(models, names)
    formats = [model_format(name, overrides) for name in models]
    endpoints = endpoints or {}
    if endpoints:
        from riskdpo.evaluation.endpoint import check_served_format

        for name, fmt in zip(models, formats):
            if name in endpoints:
                check_served_format(name, fmt, options.mode)
        if process_state().num_processes > 1:
            raise UserError("--endpoint: runs in one process, the server batches (drop accelerate launch)")
    precision = evaluation_precision([name for name in models if name not in endpoints], options.precision)
    checkpoint = None
    if resume is not None:
        from riskdpo.evaluation.resume import Checkpoint, situations_digest

        if process_state().num_processes > 1:
            raise UserError("--resume: runs in one process (drop accelerate launch, or --resume)")
        digest = situations_digest(situations)
        settings = {
            name: {**options.settings(), "precision": precision, **fmt.to_json(), "source": None, "situations": digest}
            for name, fmt in zip(models, formats)
        }
        for name in endpoints:  # a served model has no precision of ours; its server's URL may change
            settings[name] = {**settings[name], "precision": None, "served": True}
        checkpoint = Checkpoint(resume, situations, settings)
    reused = scored.records if scored is not None and scored.report.get("precision") == precision else {}
    records, served = [], {}
    for name, fmt in zip(models, formats):
        if name in reused:
            records.append(reused[name])
            continue
        done = checkpoint.done[name] if checkpoint else ()
        save = (lambda batch, name=name: checkpoint.add(name, batch)) if checkpoint else None
        if name in endpoints:
            from riskdpo.evaluation.endpoint import score_endpoint

            found, served[name] = score_endpoint(
                endpoints[name], name, situations, fmt.prompt, options.decoding, options.samples, options.batch_size,
                done, save,
            )  # fmt: skip
            records.append(found)
            continue
        records.append(_score_everywhere(name, situations, fmt, options, precision, done, save))
    selection = selection or {"total": len(situations), "skipped": {}, "sample": None, "selected": len(situations)}
    evaluation = build_report(
        models, shown, formats, situations, records, mode=options.mode, bootstrap=options.bootstrap,
        seed=options.seed, selection=selection, config=config or {},
    )  # fmt: skip
    evaluation.report["processes"] = process_state().num_processes
    evaluation.report["precision"] = precision
    if served:
        from riskdpo.evaluation.endpoint import served_record

        for summary, fmt in zip(evaluation.report["models"], formats):
            if summary["model"] in served:
                name = summary["model"]
                summary["endpoint"] = served_record(endpoints[name], name, options.decoding, fmt.prompt, served[name])
    evaluation.records = dict(zip(models, records))
    return evaluation
