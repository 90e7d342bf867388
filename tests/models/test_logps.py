"""pair_logps (one shared pass per prompt, batched) against one plain forward per sequence."""

import pytest
import torch

from helpers import choice_pairs, tiny_model  # noqa: F401  (fixture)
from riskdpo.models.logps import pair_logps
from riskdpo.models.loading import load_model, load_tokenizer


def unbatched_logp(model, tokenizer, prompt: str, completion: str) -> float:
    """log π(completion | prompt): prompt + completion ids in one forward, no padding,
    summing log-softmax at the completion positions (the contract's tokenization)."""
    prompt_ids = tokenizer(prompt).input_ids
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids)
    return sum(logprobs[start + t - 1, token].item() for t, token in enumerate(completion_ids))


@pytest.fixture(scope="module")
def model_and_pairs(tiny_model):  # noqa: F811
    model = load_model(str(tiny_model)).eval()
    pairs = choice_pairs()
    # Pairs of very different lengths: long answers, a prompt cut short, answers of unequal length.
    pairs[1] = {**pairs[1], "chosen": "I would take option 2, the sure amount, because losing is worse than not winning."}
    pairs[4] = {**pairs[4], "prompt": pairs[4]["prompt"][:25]}
    pairs[9] = {**pairs[9], "rejected": "1 1 1 1 1 1"}
    return model, pairs


@pytest.fixture(scope="module")
def expected(model_and_pairs, tiny_model):  # noqa: F811
    model, pairs = model_and_pairs
    tokenizer = load_tokenizer(str(tiny_model))
    chosen = [unbatched_logp(model, tokenizer, p["prompt"], p["chosen"]) for p in pairs]
    rejected = [unbatched_logp(model, tokenizer, p["prompt"], p["rejected"]) for p in pairs]
    return torch.tensor(chosen), torch.tensor(rejected)


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 8])
def test_pair_logps_equals_the_unbatched_computation(model_and_pairs, expected, tiny_model, batch_size, padding_side):  # noqa: F811
    model, pairs = model_and_pairs
    tokenizer = load_tokenizer(str(tiny_model))
    tokenizer.padding_side = padding_side
    chosen, rejected = pair_logps(model, tokenizer, pairs, batch_size=batch_size)
    assert chosen.shape == rejected.shape == (len(pairs),)
    assert torch.allclose(chosen, expected[0], atol=2e-4, rtol=1e-5)
    assert torch.allclose(rejected, expected[1], atol=2e-4, rtol=1e-5)
    # the pairs differ, so a mix-up of the order would show
    assert len(set(chosen.tolist())) == len(pairs)
