"""eval-choices: how often models pick the risk-averse option, side by side.

The steps, each a function a notebook can call:

1. `read_eval_situations`: a situations.json, or a spreadsheet converted on the
   fly by `riskdpo.data.convert`.
2. `select_situations`: situations without risk-averse labels are skipped and
   counted; `--sample N` keeps a seeded random N of the rest.
3. `model_format`: the prompt format of each model: the run's `run.json`
   (beside the model directory or one level up) when there is one, so that
   evaluation formats prompts exactly as training did, then explicit options.
4. `score_model`: each process scores its share of the situations
   (`PartialState.split_between_processes`) by log-probability or generation
   (`riskdpo.evaluation.choices`); the shares are gathered (`gather_object`) into one list.
5. `build_report`: per model the counts, rates and Wilson intervals of the
   exclusive categories, the cooperate rate, the mean risk-averse probability,
   the implied CARA coefficient (`riskdpo.evaluation.alpha`) and the same by stratum;
   between models the paired difference of risk-averse rates (Newcombe method
   10) and McNemar's exact p-value (`riskdpo.evaluation.stats`).

Every process computes the same report from the gathered records; only the
main process writes files (`riskdpo.evaluation.report`).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from riskdpo import __version__
from riskdpo.evaluation.alpha import DEFAULT_BOOTSTRAP, fit_alpha, utility_table
from riskdpo.evaluation.choices import (
    CATEGORIES,
    RESPONSE_STYLES,
    answer_choices,
    generate_answers,
    indistinct_labels,
    logprob_choices,
)
from riskdpo.core.errors import UserError
from riskdpo.core.fileio import read_json
from riskdpo.data.labels import label_style
from riskdpo.pairs.prompting import PromptFormat, render_prompt
from riskdpo.data.situations import Situation, load_situations
from riskdpo.evaluation.stats import PairedTable, mcnemar_exact, paired_difference_interval, summarize_categories, wilson_interval

MODES = ("logprob", "generate")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
#: Why a situation was not scored.
SKIP_NO_RISK_AVERSE = "no risk-averse labels"
SKIP_INDISTINCT = "option labels tokenize identically"
#: Answers shown per model in the report when they could not be parsed.
INVALID_EXAMPLES = 5

METHODS = {
    "choice": "logprob: argmax over options of log p(label + EOS | prompt), every option scored on the same number "
    "of leading tokens (the fewest of the situation); generate: the label read from the answer by the parser's rules",
    "categories": "exclusive, in precedence order: " + ", ".join(CATEGORIES),
    "intervals": "95% Wilson score intervals",
    "difference": "b minus a in risk-averse rate on the situations both scored; 95% interval by Newcombe (1998) "
    "method 10 for paired proportions",
    "p_value": "McNemar's exact test: two-sided binomial(1/2) test on the discordant pairs",
    "alpha": "maximum-likelihood CARA coefficient of a logit choice model over stake-free certainty equivalents "
    "CE_j(alpha) / max|prize| with precision lam: grid over log alpha, then golden-section search with lam exact; "
    "95% profile-likelihood interval; at_bounds lists what sits on a bound of the fit; with --bootstrap N a "
    "seeded percentile bootstrap interval over situations as a check",
}


@dataclass(frozen=True)
class EvalOptions:
    """How the models are run; everything that changes the numbers is here."""

    mode: str = "logprob"
    batch_size: int = 8
    max_new_tokens: int = 32
    temperature: float = 0.0
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
        }
        for name, (value, least) in minimums.items():
            if value < least:
                raise UserError(f"--{name} {value}: must be at least {least}")
        if self.temperature < 0:
            raise UserError(f"--temperature {self.temperature}: must not be negative")


@dataclass(frozen=True)
class FormatOverrides:
    """Prompt-format options given explicitly; None means "take it from run.json or the default"."""

    chat_template: bool | None = None
    system: str | None = None
    instruction: str | None = None
    response: str | None = None


@dataclass(frozen=True)
class ModelFormat:
    """The prompt format and response style a model is evaluated with, and where they came from."""

    prompt: PromptFormat
    response: str
    source: str
    trained_response: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.prompt.to_json(),
            "response": self.response,
            "source": self.source,
            "trained_response": self.trained_response,
        }


@dataclass
class Evaluation:
    """The report (JSON-ready) and one row per model and situation for the CSV."""

    report: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


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


def read_run_json(model: str) -> tuple[dict[str, Any], Path] | None:
    """The training run.json of a riskdpo output: in the model directory or its parent."""
    from riskdpo.models.loading import resolve_model

    directory = Path(resolve_model(model))
    if not directory.is_dir():
        return None
    for candidate in (directory / "run.json", directory.parent / "run.json"):
        if candidate.is_file():
            return read_json(candidate, dict, "a JSON object"), candidate
    return None


def model_format(model: str, overrides: FormatOverrides) -> ModelFormat:
    """The prompt format for `model`: run.json's choice, explicit overrides winning.

    A run trained on chain-of-thought responses ("cot") is scored in logprob
    mode on the bare labels; generate mode reads its reasoning's final answer.
    """
    run = read_run_json(model)
    stored = (run[0].get("prompt_format") or {}) if run else {}
    trained = run[0].get("response") if run else None
    chat_template = stored.get("chat_template", True) if overrides.chat_template is None else overrides.chat_template
    system = stored.get("system") if overrides.system is None else overrides.system
    instruction = stored.get("instruction") if overrides.instruction is None else overrides.instruction
    response = overrides.response or (trained if trained in RESPONSE_STYLES else "label")
    if response not in RESPONSE_STYLES:
        raise UserError(f"--response {response}: choose {' or '.join(RESPONSE_STYLES)}")
    return ModelFormat(
        prompt=PromptFormat(chat_template=bool(chat_template), system=system or None, instruction=instruction or None),
        response=response,
        source=str(run[1]) if run else "defaults",
        trained_response=trained,
    )


# ---------------------------------------------------------------- scoring


def score_model(
    model: Any,
    tokenizer: Any,
    situations: Sequence[Situation],
    fmt: ModelFormat,
    options: EvalOptions,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One record per situation: the choice and its evidence, or why it was skipped."""
    records: list[dict[str, Any]] = [{} for _ in situations]
    scorable = []
    for position, situation in enumerate(situations):
        if options.mode == "logprob" and indistinct_labels(tokenizer, situation, fmt.response):
            records[position] = {"skipped": SKIP_INDISTINCT}
        else:
            scorable.append(position)
    chosen = [situations[position] for position in scorable]
    prompts = [render_prompt(tokenizer, situation.prompt, fmt.prompt) for situation in chosen]
    if options.mode == "logprob":
        choices = logprob_choices(
            model, tokenizer, chosen, prompts, fmt.response, batch_size=options.batch_size, progress=progress
        )
    else:
        answers = generate_answers(
            model,
            tokenizer,
            prompts,
            max_new_tokens=options.max_new_tokens,
            temperature=options.temperature,
            seed=options.seed,
            batch_size=options.batch_size,
            progress=progress,
        )
        choices = answer_choices(chosen, answers)
    for position, choice in zip(scorable, choices):
        records[position] = {"skipped": None, **asdict(choice)}
    return records


def process_state() -> Any:
    """accelerate's process state: one process, or one of several under `accelerate launch`.

    Without a GPU the processes talk over gloo (accelerate's multi-CPU mode,
    started with ``accelerate launch --multi_gpu --num_processes N`` or torchrun).
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _score_everywhere(
    name: str, situations: Sequence[Situation], fmt: ModelFormat, options: EvalOptions
) -> list[dict[str, Any]]:
    """Load `name`, score this process's share of the situations, gather every share in order."""
    import torch
    from accelerate.utils import gather_object

    from riskdpo.models.loading import load_model, load_tokenizer, resolve_precision

    state = process_state()
    tokenizer = load_tokenizer(name)
    precision = resolve_precision(options.precision, str(state.device))
    model = load_model(name, precision=precision).to(state.device)
    with state.split_between_processes(list(range(len(situations)))) as share:
        show = options.progress and state.is_main_process
        local = score_model(model, tokenizer, [situations[i] for i in share], fmt, options, progress=show)
        local = [{"position": i, **record} for i, record in zip(share, local)]
    records = gather_object(local) if state.num_processes > 1 else local
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return sorted(records, key=lambda record: record["position"])


def evaluate_choices(
    models: Sequence[str],
    situations: Sequence[Situation],
    *,
    options: EvalOptions = EvalOptions(),
    overrides: FormatOverrides = FormatOverrides(),
    selection: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    scored: Mapping[str, list[dict]] | None = None,
) -> Evaluation:
    """Score every model on the same situations and build the report and CSV rows.

    `selection` is what `select_situations` says it left out; `config` the
    effective options; both are recorded in the report. `scored` maps model
    names to records of an earlier `Evaluation.records` made with the same
    situations, options and format (a base model scored before training), which
    are reused instead of scoring that model again.
    """
    if not models:
        raise UserError("give at least one --model")
    if len(set(models)) < len(models):
        raise UserError("the same --model is given twice")
    formats = [model_format(name, overrides) for name in models]
    scored = scored or {}
    records = [scored.get(name) or _score_everywhere(name, situations, fmt, options) for name, fmt in zip(models, formats)]
    selection = selection or {"total": len(situations), "skipped": {}, "sample": None, "selected": len(situations)}
    evaluation = build_report(models, formats, situations, records, options, selection, config or {})
    evaluation.report["processes"] = process_state().num_processes
    evaluation.records = dict(zip(models, records))
    return evaluation


# ---------------------------------------------------------------- report


def stratum_values(situation: Situation) -> dict[str, str]:
    """The strata a situation belongs to; a stratum whose field it lacks is left out."""
    values = {
        "sheet": situation.sheet,
        "num_options": str(len(situation.option_labels)),
        "label_style": label_style(situation.labels_as_written[0]) if situation.labels_as_written else "none",
    }
    stakes = situation.meta.get("stakes")
    if stakes not in (None, ""):
        values["stakes"] = str(stakes)
    verbal = situation.meta.get("use_verbal_probs")
    if verbal not in (None, ""):
        values["probabilities"] = "verbal" if str(verbal).strip().lower() in ("true", "1", "yes") else "numeric"
    return values


def _rates(records: Sequence[dict]) -> dict[str, Any]:
    """Counts, rates, intervals and mean risk-averse probability of scored records."""
    summary = summarize_categories([record["category"] for record in records], CATEGORIES).to_json()
    probabilities = [record["risk_averse_prob"] for record in records if record.get("risk_averse_prob") is not None]
    summary["mean_risk_averse_prob"] = sum(probabilities) / len(probabilities) if probabilities else None
    return summary


def _strata(situations: Sequence[Situation], records: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Rates per value of each stratum, over the scored records."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        for stratum, value in stratum_values(situations[record["position"]]).items():
            groups.setdefault(stratum, {}).setdefault(value, []).append(record)
    return {
        stratum: {value: _rates(values[value]) for value in sorted(values, key=natural_key)}
        for stratum, values in sorted(groups.items())
    }


def natural_key(text: str) -> tuple:
    """Sort key for stratum values putting "2" before "10"."""
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _cooperate(situations: Sequence[Situation], records: Sequence[dict]) -> dict[str, Any] | None:
    """Rate of choosing a cooperate option where situations have cooperate labels."""
    framed = [record for record in records if situations[record["position"]].cooperate]
    if not framed:
        return None
    count = sum(record["label"] in situations[record["position"]].cooperate for record in framed)
    interval = wilson_interval(count, len(framed))
    return {"n": len(framed), "count": count, "rate": count / len(framed), "interval": list(interval)}


def _comparison(name_a: str, name_b: str, records_a: Sequence[dict], records_b: Sequence[dict]) -> dict[str, Any]:
    """Model b against model a on the situations both scored."""
    both = [(a, b) for a, b in zip(records_a, records_b) if a["skipped"] is None and b["skipped"] is None]
    table = PairedTable.from_pairs(
        [a["category"] == "risk_averse" for a, _ in both], [b["category"] == "risk_averse" for _, b in both]
    )
    difference, interval = paired_difference_interval(table)
    return {
        "a": name_a,
        "b": name_b,
        "n": table.n,
        "risk_averse_diff": difference,
        "interval": list(interval),
        "p_value": mcnemar_exact(table),
        "table": asdict(table),
    }


def build_report(
    models: Sequence[str],
    formats: Sequence[ModelFormat],
    situations: Sequence[Situation],
    records: Sequence[Sequence[dict]],
    options: EvalOptions,
    selection: dict[str, Any],
    config: dict[str, Any],
) -> Evaluation:
    """The report and CSV rows from every model's records (aligned with `situations`)."""
    table = utility_table(situations)
    summaries = []
    rows = []
    for name, fmt, model_records in zip(models, formats, records):
        scored = [record for record in model_records if record["skipped"] is None]
        if not scored:
            reasons = Counter(record["skipped"] for record in model_records)
            raise UserError(f"{name}: no situation could be scored ({', '.join(reasons)})")
        chosen = [record.get("label") for record in model_records]
        summary = {"model": name, "prompt_format": fmt.to_json(), **_rates(scored)}
        summary["cooperate"] = _cooperate(situations, scored)
        summary["alpha"] = fit_alpha(table, chosen, bootstrap=options.bootstrap, seed=options.seed).to_json()
        summary["skipped"] = dict(Counter(record["skipped"] for record in model_records if record["skipped"]))
        summary["unequal_label_tokens"] = sum(
            len(set(record["label_tokens"].values())) > 1 for record in scored if record.get("label_tokens")
        )
        summary["invalid_reasons"] = dict(
            Counter(record.get("invalid_reason") or "unknown" for record in scored if record["category"] == "invalid")
        )
        invalid = [record for record in scored if record["category"] == "invalid"][:INVALID_EXAMPLES]
        summary["invalid_examples"] = [_where(situations[r["position"]], answer=r["answer"]) for r in invalid]
        summary["strata"] = _strata(situations, scored)
        summaries.append(summary)
        rows += [_csv_row(name, situations[record["position"]], record) for record in model_records]
    comparisons = [_comparison(models[0], name, records[0], other) for name, other in zip(models[1:], records[1:])]
    report = {
        "command": "eval-choices",
        "version": __version__,
        "mode": options.mode,
        "config": config,
        "situations": selection,
        "categories": list(CATEGORIES),
        "methods": METHODS,
        "models": summaries,
        "comparisons": comparisons,
    }
    return Evaluation(report=report, rows=rows)


def _where(situation: Situation, **fields: Any) -> dict[str, Any]:
    """A situation's sheet and id, followed by `fields`."""
    return {"sheet": situation.sheet, "situation_id": situation.situation_id, **fields}


def _csv_row(model: str, situation: Situation, record: dict) -> dict[str, Any]:
    """One CSV row: the situation, the model's choice and its evidence (or why it was skipped)."""
    return {
        "model": model,
        **_where(situation),
        "choice": record.get("label") or "",
        "category": record.get("category") or "skipped",
        "risk_averse": " ".join(situation.risk_averse),
        "risk_neutral": " ".join(situation.risk_neutral),
        "too_risk_averse": " ".join(situation.too_risk_averse),
        "logps": json.dumps(record["logps"]) if record.get("logps") else "",
        "risk_averse_prob": "" if record.get("risk_averse_prob") is None else record["risk_averse_prob"],
        "answer": record.get("answer") or "",
        "answer_source": record.get("answer_source") or "",
        "invalid_reason": record.get("invalid_reason") or "",
        "reasoning_chars": "" if record.get("reasoning_chars") is None else record["reasoning_chars"],
        "skipped": record.get("skipped") or "",
    }
