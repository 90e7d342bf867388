"""Iterative on-policy preference optimisation: sample -> pair -> train -> evaluate, R rounds.

Iterative reasoning preference optimisation (Pang et al. 2024) improves a
model with its own answers: each round samples K answers per situation from
the current model, grades them against the situation's labels and pairs a
risk-averse answer (chosen) against a wrong or unreadable one (rejected)
(`riskdpo.recipes.on_policy.sample_pairs`), trains from the current model with
DPO plus a length-normalised NLL term on the chosen answer,

    L = L_DPO + W · (-log π(y_c|x) / |y_c|)        (`train.nll_weight` = W)

(`riskdpo.training.run.train`), and evaluates the result
(`riskdpo.evaluation.evaluate.evaluate_choices`). The next round starts from
that round's final model, which is also its reference. Everything a round
makes is kept:

    OUTPUT_DIR/round-R/pairs.jsonl      the round's sampled pairs
    OUTPUT_DIR/round-R/train/           a training run (final-model/, run.json, metrics.jsonl)
    OUTPUT_DIR/round-R/report.json      eval-choices' report (+ .csv, .png)
    OUTPUT_DIR/rounds.json              what each finished round did, which rounds finished
                                        (`finished`), the round under way (`running`)

A recipe stopped part-way (Ctrl-C, a crash, the machine gone) continues with
`resume=True` (`riskdpo iterate --resume`): the rounds rounds.json lists as
finished are kept, not redone, and the first unfinished round starts again
from the last finished round's model (its training run resumed from its
checkpoints where it has some). The recipe's settings must be those it was
started with (their fingerprint is in rounds.json); `rounds` may grow.

Round R samples with seed `sample.seed` + R - 1, so rounds draw different
answers and the same config gives the same files. Prompts are rendered alike in
sampling, training and evaluation: sampling takes the training section's
chat_template, system and chat_template_kwargs, and evaluation reads them from
the run's run.json.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import read_json, write_json
from riskdpo.data.situations import load_situations
from riskdpo.evaluation.evaluate import EvalOptions, evaluate_choices, read_eval_situations
from riskdpo.evaluation.report import write_evaluation
from riskdpo.pairs.records import write_pairs
from riskdpo.pairs.prompting import PromptFormat
from riskdpo.recipes.on_policy import SampleSpec, sample_pairs
from riskdpo.training.checkpoint import checkpoint_dirs, fingerprint
from riskdpo.training.config import TrainConfig
from riskdpo.training.run import train

#: The sections of an iterate config and the settings they take.
_TOP_KEYS = ("model", "situations", "output_dir", "rounds", "eval_situations", "sample", "train", "evaluate")
#: Training settings a round sets itself.
_ROUND_SET = ("dataset", "output_dir", "model", "resume", "overwrite")


@dataclass(frozen=True)
class IterateConfig:
    """One iterate recipe: where to start, how many rounds, and the settings of each stage.

    `sample` holds `SampleSpec` fields (but `fmt`, which follows `train`),
    `train` `TrainConfig` fields (but those of `_ROUND_SET`), `evaluate`
    `EvalOptions` fields. `eval_situations` defaults to `situations`.
    """

    model: str
    situations: str
    output_dir: str
    rounds: int = 2
    eval_situations: str | None = None
    sample: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise UserError(f"rounds {self.rounds}: must be at least 1")
        _check_keys("sample", self.sample, [f.name for f in dataclasses.fields(SampleSpec) if f.name != "fmt"])
        _check_keys("train", self.train, [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _ROUND_SET])
        _check_keys("evaluate", self.evaluate, [f.name for f in dataclasses.fields(EvalOptions)])
        self.sample_spec(1)  # a bad setting of any stage fails now, not after the first sampling
        EvalOptions(**self.evaluate)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "config") -> IterateConfig:
        """An `IterateConfig` from a parsed YAML or TOML mapping; unknown or missing keys are named."""
        if not isinstance(data, Mapping):
            raise UserError(f"{source}: expected a mapping of settings")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise UserError(f"{source}: unknown setting {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
        missing = [key for key in ("model", "situations", "output_dir") if not data.get(key)]
        if missing:
            raise UserError(f"{source}: missing setting {missing[0]!r}")
        for section in ("sample", "train", "evaluate"):
            if not isinstance(data.get(section) or {}, Mapping):
                raise UserError(f"{source}: {section} must be a mapping of settings")
        sections = {key: {name.replace("-", "_"): value for name, value in (data.get(key) or {}).items()}
                    for key in ("sample", "train", "evaluate")}
        return cls(**{key: value for key, value in data.items() if key not in sections}, **sections)

    def prompt_format(self) -> PromptFormat:
        """How sampling renders prompts: as training will (its chat template, system and arguments)."""
        settings = self.train_config(1, self.model)
        return PromptFormat(settings.chat_template, settings.system, None, settings.chat_template_kwargs)

    def sample_spec(self, round_number: int) -> SampleSpec:
        """Round R's sampling: the `sample` settings with seed `seed` + R - 1."""
        settings = {**self.sample, "sheets": tuple(self.sample.get("sheets", ()))}
        settings["seed"] = settings.get("seed", 0) + round_number - 1
        return SampleSpec(**settings, fmt=self.prompt_format())

    def train_config(self, round_number: int, model: str) -> TrainConfig:
        """Round R's training run: from `model` on the round's pairs (DPO + NLL, W = 1 unless set)."""
        folder = self.round_dir(round_number)
        rpo = {"nll_weight": 1.0} if self.train.get("objective", "dpo") == "dpo" else {}
        return TrainConfig(**{**rpo, **self.train}, dataset=str(folder / "pairs.jsonl"),
                           output_dir=str(folder / "train"), model=model)

    def round_dir(self, round_number: int) -> Path:
        return Path(self.output_dir) / f"round-{round_number}"


@dataclass
class Round:
    """What one round made."""

    number: int
    started_from: str
    pairs: str
    model: str
    report: str
    summary: list[str]


def recipe_fingerprint(config: IterateConfig) -> str:
    """The settings a resumed recipe must share with the one it continues (all but output_dir and rounds)."""
    settings = dataclasses.asdict(config)
    return fingerprint({key: value for key, value in settings.items() if key not in ("output_dir", "rounds")})


def finished_rounds(config: IterateConfig) -> list[Round]:
    """The rounds an earlier run of this recipe finished, from OUTPUT_DIR/rounds.json (`UserError` when
    it is missing or was written by a recipe with other settings)."""
    path = Path(config.output_dir) / "rounds.json"
    if not path.is_file():
        raise UserError(f"--resume: {path} is missing, so there is no recipe to continue; start afresh in a new "
                        "or empty folder")
    record = read_json(path, dict, "a rounds record")
    if record.get("recipe") != recipe_fingerprint(config):
        raise UserError(f"--resume: {path} was written by a recipe with other settings; resume with the same "
                        "config (only rounds may change), or start afresh in a new or empty folder")
    fields = [f.name for f in dataclasses.fields(Round)]
    return [Round(**{name: entry[name] for name in fields}) for entry in record.get("rounds", [])
            if entry.get("status") == "finished"]


def _record(output: Path, config: IterateConfig, rounds: list[Round], running: int | None) -> None:
    write_json(output / "rounds.json", {
        "recipe": recipe_fingerprint(config),
        "rounds_planned": config.rounds,
        "finished": [r.number for r in rounds],
        "running": running,
        "rounds": [{**dataclasses.asdict(r), "status": "finished"} for r in rounds],
    })


def _round_training(config: IterateConfig, number: int, model: str) -> TrainConfig:
    """Round R's training run, continuing what an interrupted attempt left in its folder."""
    settings = config.train_config(number, model)
    folder = Path(settings.output_dir)
    if checkpoint_dirs(folder):
        return dataclasses.replace(settings, resume=True)
    return dataclasses.replace(settings, overwrite=folder.exists())


def run_rounds(config: IterateConfig, say: Callable[[str], None] = print, resume: bool = False) -> list[Round]:
    """Run the recipe's rounds; return what each made.

    Stops early, with a line saying so, when a round's answers give no pair
    (round 1: a `UserError`, nothing was made). The output folder must be new or
    empty, so a finished recipe is never mixed with another; with `resume` it
    must hold this recipe's rounds.json, whose finished rounds are kept.
    """
    output = Path(config.output_dir)
    if resume:
        rounds = finished_rounds(config)
    elif output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"{output}: already holds files; iterate writes into a new or empty folder "
                        "(--resume continues the recipe that wrote them)")
    else:
        rounds = []
    situations = load_situations(config.situations)
    eval_situations = read_eval_situations(config.eval_situations or config.situations)
    options = EvalOptions(**config.evaluate)
    model = rounds[-1].model if rounds else config.model
    for done in rounds:
        say(f"round {done.number}: finished before, kept ({done.model})")
    for number in range(len(rounds) + 1, config.rounds + 1):
        sampled = sample_pairs(model, situations, config.sample_spec(number))
        for line in sampled.summary_lines():
            say(f"round {number}: {line}")
        if not sampled.pairs:
            message = f"round {number}: no situation gave both a chosen and a rejected answer from {model}"
            if number == 1:
                raise UserError(f"{message}; nothing trained")
            say(f"{message}; stopping after {number - 1} round{'s' if number > 2 else ''}")
            break
        folder = config.round_dir(number)
        folder.mkdir(parents=True, exist_ok=True)
        _record(output, config, rounds, running=number)
        pairs = folder / "pairs.jsonl"
        write_pairs(pairs, sampled.pairs)
        final = train(_round_training(config, number, model))
        say(f"round {number}: trained {final}")
        evaluation = evaluate_choices([str(final)], eval_situations, options=options, names=[f"round-{number}"],
                                      config={"round": number, **options.settings()})
        report = write_evaluation(evaluation, folder / "report.json")[0]
        say(f"round {number}: wrote {report}")
        rounds.append(Round(number, model, str(pairs), str(final), str(report), sampled.summary_lines()))
        _record(output, config, rounds, running=None)
        model = str(final)
    return rounds


def _check_keys(section: str, given: Mapping[str, Any], known: list[str]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UserError(f"{section}: unknown setting {unknown[0]!r} (known: {', '.join(known)})")
