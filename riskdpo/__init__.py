"""riskdpo: fine-tune language models to be risk-averse with DPO, and measure it.

Pipeline: spreadsheet --convert--> situations.json --make-pairs--> pairs.jsonl
--train--> model dir, and eval-choices scores any model on situations.json.
Every command is a thin wrapper over functions importable from this package.
"""

__version__ = "0.1.0"
