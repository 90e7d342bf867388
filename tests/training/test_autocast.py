"""Mixed precision casts every weight once per autocast region, and riskdpo opens one
region per micro-batch and one per reference or validation pass (issue 14, item 3).

Autocast keeps the bf16 copy of a weight it casts until its outermost region ends;
a region per forward call (accelerate's wrapper) casts every weight again for
each forward, and under --full each copy is a second bf16 copy of the model. The
casts are counted by watching the real operators of a real bf16 run of the tiny
model (a dispatch mode sees every aten call; nothing is replaced).
"""

import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import pairs_path, read_jsonl, tiny_model  # noqa: F401
from riskdpo.training.config import TrainConfig
from riskdpo.training.run import train


class WeightCasts(TorchDispatchMode):
    """Counts, per parameter, the casts of an fp32 parameter to bf16."""

    def __init__(self) -> None:
        super().__init__()
        self.casts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func is torch.ops.aten._to_copy.default and isinstance(args[0], torch.nn.Parameter)
                and args[0].dtype == torch.float32 and kwargs.get("dtype") == torch.bfloat16):
            self.casts[id(args[0])] += 1
        return func(*args, **kwargs)


def test_full_bf16_casts_each_weight_once_per_region(tiny_model, pairs_path, tmp_path):  # noqa: F811
    # 16 pairs, batch 4, 2 micro-batches a step: 4 batches in each reference and validation pass, 2 steps.
    config = TrainConfig(dataset=str(pairs_path), val=str(pairs_path), output_dir=str(tmp_path / "run"),
                         model=str(tiny_model), precision="bf16", lora=False, epochs=1, batch_size=4, grad_accum=2,
                         max_length=128, progress=False)
    watch = WeightCasts()
    with watch:
        train(config)
    steps = 2
    regions = 2 + 2 + steps * config.grad_accum  # reference of train and val, validation at start and end, micro-batches
    model_weights = list(watch.casts.values())
    assert model_weights and set(model_weights) == {regions}, collections.Counter(model_weights)
    assert [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [0, 1, 2, 2]
