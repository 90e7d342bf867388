"""How each evaluated model is prompted and what it is called.

`model_format`: a model trained by riskdpo is prompted exactly as in training,
from its run's `run.json` (in the model directory or one level up): chat
template on or off, system message, closing instruction, chat-template
arguments and response style; options given explicitly win. `short_names`:
tables and figures name a model by its run directory or by ``--name``, never
by a machine path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import read_json
from riskdpo.evaluation.choices import RESPONSE_STYLES
from riskdpo.pairs.prompting import PromptFormat


@dataclass(frozen=True)
class FormatOverrides:
    """Prompt-format options given explicitly; None means "take it from run.json or the default"."""

    chat_template: bool | None = None
    system: str | None = None
    instruction: str | None = None
    response: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None


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
    kwargs = stored.get("chat_template_kwargs") if overrides.chat_template_kwargs is None else overrides.chat_template_kwargs
    instruction = stored.get("instruction") if overrides.instruction is None else overrides.instruction
    response = overrides.response or (trained if trained in RESPONSE_STYLES else "label")
    if response not in RESPONSE_STYLES:
        raise UserError(f"--response {response}: choose {' or '.join(RESPONSE_STYLES)}")
    return ModelFormat(
        prompt=PromptFormat(
            chat_template=bool(chat_template),
            system=system or None,
            instruction=instruction or None,
            chat_template_kwargs=kwargs or None,
        ),
        response=response,
        source=str(run[1]) if run else "defaults",
        trained_response=trained,
    )


def short_names(models: Sequence[str], names: Sequence[str] = ()) -> list[str]:
    """The name each model is shown by: `names` when given, else its run directory, else its last path part.

    The run directory is the one holding the run's run.json (``runs/averse`` for
    ``runs/averse/final-model``); a hub id ``org/model`` is ``model``. Models
    that would share a name (two checkpoints of one run) get their last two
    path parts (``averse/checkpoint-100``). Figures and tables then carry no
    machine paths.
    """
    if names:
        if len(names) != len(models):
            raise UserError(f"--name given {len(names)} times for {len(models)} --model; give one per model or none")
        shown = list(names)
    else:
        shown = [run[1].parent.name if (run := read_run_json(model)) else Path(model).name or model for model in models]
        shown = [
            "/".join(Path(model).parts[-2:]) if shown.count(name) > 1 else name for name, model in zip(shown, models)
        ]
    repeated = sorted({name for name in shown if shown.count(name) > 1})
    if repeated:
        raise UserError(f"two models are named {repeated[0]!r}; give each a --name")
    return shown
