"""The supervised warm-up's model is freed before the DPO model loads (issue 14, item 4).

accelerate's autocast wrapper made every prepared model a reference cycle, so
the warm-up model (weights, gradients, AdamW state) lived on beside the DPO
model until the cyclic garbage collector happened to run. With the collector
switched off, nothing but explicit freeing can make the model go.
"""

import gc

from helpers import pairs_path, tiny_model  # noqa: F401
from riskdpo.pairs.prompting import PromptFormat
from riskdpo.training.config import TrainConfig
from riskdpo.training.metrics import MetricsLog
from riskdpo.training.pair_data import fit_split, load_pairs
from riskdpo.training.run import supervised_warmup
from riskdpo.training.steps import RunState


def live_models() -> list:
    """Every transformers model object the collector tracks, unreachable ones not yet collected included."""
    from transformers import PreTrainedModel

    return [thing for thing in gc.get_objects() if issubclass(type(thing), PreTrainedModel)]


def test_warmup_model_is_freed_on_return(tiny_model, pairs_path, tmp_path):  # noqa: F811
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from riskdpo.models.loading import load_tokenizer

    config = TrainConfig(dataset=str(pairs_path), output_dir=str(tmp_path), model=str(tiny_model), sft_epochs=1,
                         precision="bf16", batch_size=4, max_length=128, progress=False)
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")  # as train() makes it: the autocast wrapper applies
    tokenizer = load_tokenizer(config.model)
    records = load_pairs(config.dataset)
    data = fit_split(config.dataset, records, tokenizer, PromptFormat(config.chat_template, config.system, None), config.max_length)
    run = RunState(config, accelerator, tokenizer, "bf16", data, None,
                   MetricsLog(tmp_path / "metrics.jsonl", active=True, resume=False))
    gc.collect()
    earlier = live_models()  # what other tests of this process may still hold
    gc.disable()
    try:
        saved = supervised_warmup(run)
        left = [model for model in live_models() if not any(model is old for old in earlier)]
    finally:
        gc.enable()
        run.log.close()
    assert left == [], [type(model).__name__ for model in left]
    assert (tmp_path / "sft-model" / "config.json").exists() and saved == str(tmp_path / "sft-model")
