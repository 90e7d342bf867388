"""cuDNN attention is kept out of training exactly where its backward pass is known to return NaN
gradients (9.x GPUs, torch from 2.11), and the line that stops a run says whether the loss or the
gradient went non-finite, and the shape of the step's micro-batches."""

import math

import pytest
import torch

from helpers import choice_pairs, tiny_model  # noqa: F401  (fixture)
from riskdpo.models.loading import load_tokenizer
from riskdpo.models.logps import collate, pack, tokenize_group
from riskdpo.training.attention_backends import cudnn_attention_unsafe, training_attention
from riskdpo.training.steps import non_finite_message, step_shape


@pytest.mark.parametrize(("capability", "version", "unsafe"), [
    ((9, 0), "2.13.0+cu130", True),   # H100/H200 under the torch of pytorch#196678
    ((9, 0), "2.11.0", True),         # the first release that prefers the faulty kernel
    ((9, 0), "2.14.1", True),         # no release is known to ship the fixed cuDNN
    ((9, 0), "2.10.1+cu128", False),
    ((8, 0), "2.13.0", False),        # A100: another backward kernel
    ((10, 0), "2.13.0", False),
    (None, "2.13.0+cpu", False),      # not a CUDA device
])  # fmt: skip
def test_cudnn_attention_is_unsafe_on_hopper_from_torch_2_11(capability, version, unsafe):
    assert cudnn_attention_unsafe(capability, version) is unsafe


def test_the_cpu_keeps_every_backend():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    with training_attention(torch.device("cpu")) as turned_off:
        assert turned_off is False and torch.backends.cuda.cudnn_sdp_enabled() == before


def test_a_finite_loss_with_a_non_finite_gradient_blames_the_gradient_not_the_learning_rate():
    line = non_finite_message(0.6931, math.nan, "step 7 (epoch 2)", "4 × 192, 4 × 160", "the last checkpoint is c")
    assert line.startswith("training stopped: the gradient became non-finite (norm nan) while the loss was finite (0.6931)")
    assert "at step 7 (epoch 2) (micro-batches of rows × tokens: 4 × 192, 4 × 160)" in line
    assert "lower --lr" not in line and "--precision fp32" in line
    loss_line = non_finite_message(math.inf, math.nan, "step 7 (epoch 2)", "4 × 192", "no checkpoint was written")
    assert loss_line.startswith("training stopped: the loss became non-finite (inf, gradient norm nan)")
    assert "4 × 192" in loss_line and loss_line.endswith("try a lower --lr")


@pytest.mark.parametrize("completions", [None, 1])
def test_the_step_shape_is_the_packed_length_of_each_micro_batch(tiny_model, completions):  # noqa: F811
    tokenizer = load_tokenizer(str(tiny_model))
    groups = [tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in choice_pairs()[:5]]
    micros = [([0, 3], 1.0), ([1, 2, 4], 1.0)]
    expected = []
    for indices, _ in micros:
        batch = collate([(groups[i][0], groups[i][1][:completions]) for i in indices], tokenizer.pad_token_id)
        expected.append(f"{len(indices)} × {pack(batch).ids.shape[1]}")
    assert step_shape(groups, micros, completions) == ", ".join(expected)
