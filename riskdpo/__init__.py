"""riskdpo: fine-tune language models to be risk-averse with DPO, and measure it.

Pipeline: spreadsheet --convert--> situations.json --make-pairs--> pairs.jsonl
--train--> model dir, and eval-choices scores any model on situations.json.
Every command is a thin wrapper over functions importable from this package:

    from riskdpo import read_situations, select_pairs, TrainConfig, train, evaluate_choices

The names below are imported lazily, on first use (PEP 562 module `__getattr__`):
`import riskdpo` alone loads neither torch nor transformers, so `riskdpo --help`
and `riskdpo --version` stay fast. `docs/architecture.md` says which package
holds what.
"""

import importlib as _importlib

from riskdpo.core.version import __version__

#: Public name -> "module:attribute" that defines it: the one table to edit when a definition moves.
_EXPORTS: dict[str, str] = {
    # situations: read spreadsheets, save and load situations.json
    "read_situations": "riskdpo.data.convert:read_situations",
    "Situation": "riskdpo.data.situations:Situation",
    "load_situations": "riskdpo.data.situations:load_situations",
    "save_situations": "riskdpo.data.situations:save_situations",
    # preference pairs
    "select_pairs": "riskdpo.pairs.build:select_pairs",
    "split_by_situation": "riskdpo.pairs.build:split_by_situation",
    "write_pairs": "riskdpo.pairs.records:write_pairs",
    # training
    "TrainConfig": "riskdpo.training.config:TrainConfig",
    "train": "riskdpo.training.run:train",
    "dpo_loss": "riskdpo.training.loss:dpo_loss",
    "build_tiny_model": "riskdpo.models.tiny:build_tiny_model",
    # evaluation
    "EvalOptions": "riskdpo.evaluation.evaluate:EvalOptions",
    "read_eval_situations": "riskdpo.evaluation.evaluate:read_eval_situations",
    "evaluate_choices": "riskdpo.evaluation.evaluate:evaluate_choices",
    "write_evaluation": "riskdpo.evaluation.report:write_evaluation",
    "format_table": "riskdpo.evaluation.report:format_table",
    "parse_answer": "riskdpo.data.answers:parse_answer",
    "fit_choice_logit": "riskdpo.evaluation.features:fit_choice_logit",
    "rule_agreement": "riskdpo.evaluation.features:rule_agreement",
    "grade_answer": "riskdpo.evaluation.reasoning_grades:grade_answer",
    # economics: the agents' expected utility
    "RISK_AVERSE_ALPHA": "riskdpo.data.expected_utility:RISK_AVERSE_ALPHA",
    "TOO_RISK_AVERSE_ALPHA": "riskdpo.data.expected_utility:TOO_RISK_AVERSE_ALPHA",
    "certainty_equivalent": "riskdpo.data.expected_utility:certainty_equivalent",
    "best_labels": "riskdpo.data.expected_utility:best_labels",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    """Import the module behind a public name on first use, and keep the value."""
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'riskdpo' has no attribute {name!r}")
    module, attribute = target.split(":")
    value = getattr(_importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
