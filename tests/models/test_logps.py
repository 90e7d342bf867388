"""pair_logps (one packed pass per prompt, batched) against one plain forward per sequence
(tiny phi and tiny Llama);
its gradients, with and without activation checkpointing, against the unshared computation;
and no deprecation warning from transformers on the way."""

import warnings

import pytest
import torch

from helpers import choice_pairs, tiny_model  # noqa: F401  (fixture)
from riskdpo.models import logps as logps_module
from riskdpo.models import shared_prefix
from riskdpo.models.logps import (
    batch_logps,
    collate,
    completion_logps,
    concatenated_token_logps,
    pair_logps,
    tokenize_group,
)
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.training.lora import add_adapter, lora_config
from riskdpo.training.policy import enable_checkpointing

pytestmark = pytest.mark.floor  # touches the transformers model API: CI runs it again at the floor versions


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


@pytest.fixture(scope="module", params=["phi-sdpa", "phi-eager", "llama-sdpa", "llama-eager"])
def model_and_pairs(tiny_model, request):  # noqa: F811
    """The tiny phi (whose positions barely matter) and a tiny Llama (rotary positions on every
    dimension, grouped-query attention): the packed pass against a plain forward on both."""
    architecture, implementation = request.param.split("-")
    if architecture == "phi":
        model = load_model(str(tiny_model), attn_implementation=implementation).eval()
    else:
        model = tiny_llama(load_tokenizer(str(tiny_model)), implementation)
    assert model.config._attn_implementation == implementation
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


def test_groups_of_different_sizes_equal_the_unbatched_computation(model_and_pairs, expected, tiny_model):  # noqa: F811
    """Eval-style groups: three completions (chosen, rejected, a long one) and two, batched together."""
    model, pairs = model_and_pairs
    tokenizer = load_tokenizer(str(tiny_model))
    extra = "1 1 1 1 1 1 and then some more words"
    completions = [[p["chosen"], p["rejected"], extra] if i % 2 else [p["chosen"], p["rejected"]] for i, p in enumerate(pairs)]
    scores = completion_logps(model, tokenizer, [p["prompt"] for p in pairs], completions, batch_size=4)
    for i, (pair, row) in enumerate(zip(pairs, scores)):
        assert len(row) == len(completions[i])
        assert row[0] == pytest.approx(expected[0][i].item(), abs=2e-4)
        assert row[1] == pytest.approx(expected[1][i].item(), abs=2e-4)
        if i % 2:
            assert row[2] == pytest.approx(unbatched_logp(model, tokenizer, pair["prompt"], extra), abs=2e-4)


def test_the_concatenated_fallback_equals_the_packed_pass(model_and_pairs, tiny_model):  # noqa: F811
    """The path for attention implementations without custom masks gives the same numbers."""
    model, pairs = model_and_pairs
    tokenizer = load_tokenizer(str(tiny_model))
    batch = collate([tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in pairs[:5]],
                    tokenizer.pad_token_id)
    with torch.no_grad():
        packed, _ = batch_logps(model, batch)
        concatenated = (concatenated_token_logps(model, batch) * batch.completion_mask).sum(-1).view(-1, 2)
    assert torch.allclose(packed, concatenated, atol=2e-4)


def unbatched_end_set_logp(model, tokenizer, prompt, completion, end_set) -> float:
    """log π(completion | prompt) + log Σ_{v in end_set} π(v | prompt, completion), from one plain forward."""
    prompt_ids = tokenizer(prompt).input_ids
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + completion_ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids) - 1
    tokens = sum(logprobs[start + t, token].item() for t, token in enumerate(completion_ids))
    return tokens + torch.logsumexp(logprobs[start + len(completion_ids)][end_set], 0).item()


def test_an_end_set_scores_the_final_token_as_any_token_of_the_set(model_and_pairs, tiny_model):  # noqa: F811
    """Packed (sdpa, eager) and concatenated passes, completions of 0 to many tokens before the end."""
    model, pairs = model_and_pairs
    tokenizer = load_tokenizer(str(tiny_model))
    end_set = torch.rand(len(tokenizer), generator=torch.Generator().manual_seed(0)) < 0.3
    completions = [[p["chosen"], p["rejected"], "", "1 1 1"] for p in pairs[:6]]
    prompts = [p["prompt"] for p in pairs[:6]]
    scores = completion_logps(model, tokenizer, prompts, completions, batch_size=4, end_set=end_set)
    for prompt, texts, row in zip(prompts, completions, scores):
        expected = [unbatched_end_set_logp(model, tokenizer, prompt, text, end_set) for text in texts]
        assert row == pytest.approx(expected, abs=2e-4)
    batch = collate([tokenize_group(tokenizer, p, c) for p, c in zip(prompts, completions)], tokenizer.pad_token_id)
    batch.end_set = end_set
    with torch.no_grad():
        packed, _ = batch_logps(model, batch)
        concatenated = (concatenated_token_logps(model, batch) * batch.completion_mask).sum(-1).view(-1, 4)
    assert torch.allclose(packed, concatenated, atol=2e-4)
    assert torch.allclose(packed, torch.tensor(scores), atol=2e-4)


def test_num_tokens_counts_each_prompt_once_and_every_completion(tiny_model):  # noqa: F811
    tokenizer = load_tokenizer(str(tiny_model))
    groups = [tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in choice_pairs()[:3]]
    batch = collate(groups, tokenizer.pad_token_id)
    assert batch.num_tokens == sum(len(prompt) + len(a) + len(b) for prompt, (a, b) in groups)
    assert batch.num_tokens == int(batch.prompt_mask.sum() + batch.completion_mask.sum())


def _gradients(model, batch):
    model.zero_grad(set_to_none=True)
    logps, _ = batch_logps(model, batch)
    (logps * torch.tensor([[1.0, -0.5]])).sum().backward()
    return logps.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_equal_those_of_the_unshared_computation(tiny_model, checkpointing, monkeypatch):  # noqa: F811
    """Training-style: the packed pass (log-softmax in chunks of 3 positions, recomputed in the
    backward pass) gives the log-probs and the gradients of one sequence per completion."""
    tokenizer = load_tokenizer(str(tiny_model))
    pairs = choice_pairs()[:4]
    pairs[1] = {**pairs[1], "chosen": "I would take option 2, the sure amount."}
    batch = collate([tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in pairs],
                    tokenizer.pad_token_id)
    model = load_model(str(tiny_model)).train()
    for pair in pairs:  # one plain sequence per completion, no batching
        for column, weight in ((0, 1.0), (1, -0.5)):
            single = collate([tokenize_group(tokenizer, pair["prompt"], [[pair["chosen"], pair["rejected"]][column]])],
                             tokenizer.pad_token_id)
            logp = (concatenated_token_logps(model, single) * single.completion_mask).sum()
            (logp * weight).backward()
    reference_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        reference_logps = (concatenated_token_logps(model, batch) * batch.completion_mask).sum(-1).view(-1, 2)
    if checkpointing:
        enable_checkpointing(model)  # under the name this transformers gives it
        assert model.is_gradient_checkpointing
    monkeypatch.setattr(logps_module, "LOGPS_CHUNK_POSITIONS", 3)
    logps, grads = _gradients(model, batch)
    assert torch.allclose(logps, reference_logps, atol=2e-4)
    assert grads.keys() == reference_grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(grad, reference_grads[name], atol=1e-4, rtol=1e-3), name
    assert any(grad.abs().sum() > 0 for grad in grads.values())


def test_no_deprecation_warning_from_transformers_in_train_and_eval_passes(tiny_model):  # noqa: F811
    """Every warning a FutureWarning or DeprecationWarning fails: a LoRA policy with activation
    checkpointing (forward and backward), its reference pass with the adapter off, and eval's
    completion_logps. (The cached pass of earlier versions warned on every call: past_key_values
    is deprecated and goes in transformers 5.40.)"""
    tokenizer = load_tokenizer(str(tiny_model))
    pairs = choice_pairs()[:4]
    groups = [tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in pairs]
    model = load_model(str(tiny_model))
    enable_checkpointing(model)
    policy = add_adapter(model, lora_config(4, 8.0, 0.0), quantized=False, gradient_checkpointing=True).train()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        logps, _ = batch_logps(policy, collate(groups, tokenizer.pad_token_id))
        logps.sum().backward()
        with torch.no_grad(), policy.disable_adapter():
            batch_logps(policy.eval(), collate(groups, tokenizer.pad_token_id))
        scores = completion_logps(policy, tokenizer, [p["prompt"] for p in pairs], [[p["chosen"], p["rejected"]] for p in pairs])
    assert torch.allclose(torch.tensor(scores), logps.detach(), atol=2e-4)


# ---------------------------------------------------------------- shared prompt prefix

LEAD = "Which option do you choose? Output the label of your chosen option only. Losing is worse than not winning.\n"


def tiny_llama(tokenizer, implementation):
    """A tiny random Llama (grouped-query attention and full rotary embeddings, as SmolLM2)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.set_attn_implementation(implementation)
    return model


@pytest.fixture(scope="module", params=["phi-sdpa", "phi-eager", "llama-sdpa", "llama-eager"])
def prefix_model(tiny_model, request):  # noqa: F811
    architecture, implementation = request.param.split("-")
    tokenizer = load_tokenizer(str(tiny_model))
    if architecture == "phi":
        model = load_model(str(tiny_model), attn_implementation=implementation).eval()
    else:
        model = tiny_llama(tokenizer, implementation)
    assert model.config._attn_implementation == implementation
    return model, tokenizer


def prefixed_prompts(lead: str = LEAD) -> tuple[list[str], list[list[str]]]:
    """Prompts that share `lead`, of different lengths (one cut short, so batches are padded),
    with groups of two and three completions of different lengths."""
    pairs = choice_pairs()[:7]
    prompts = [lead + p["prompt"] for p in pairs]
    prompts[2] = lead + pairs[2]["prompt"][:12]
    completions = [[p["chosen"], p["rejected"], "1 1 1 1 1 1"] if i % 3 == 1 else [p["chosen"], p["rejected"]]
                   for i, p in enumerate(pairs)]  # fmt: skip
    return prompts, completions


def token_ids(tokenizer, prompts):
    return [tokenize_group(tokenizer, p, [])[0] for p in prompts]


@pytest.mark.parametrize("case", ["common lead", "a prompt is the prefix plus one token", "no common prefix"])
def test_a_shared_prefix_gives_the_unshared_logps_and_choices(prefix_model, case):
    model, tokenizer = prefix_model
    prompts, completions = prefixed_prompts()
    if case == "a prompt is the prefix plus one token":
        prompts, completions = prompts + [LEAD], completions + [["1", "2"]]
    if case == "no common prefix":
        prompts = [p[len(LEAD):] for p in prompts]
    shared = shared_prefix.common_prefix_length(token_ids(tokenizer, prompts))
    expected_shared = {"common lead": len(token_ids(tokenizer, [LEAD])[0]),
                       "a prompt is the prefix plus one token": len(token_ids(tokenizer, [LEAD])[0]) - 1,
                       "no common prefix": 0}[case]  # fmt: skip
    assert shared == expected_shared
    assert (shared >= shared_prefix.MIN_SHARED_PREFIX) == (case != "no common prefix")
    plain = completion_logps(model, tokenizer, prompts, completions, batch_size=3)
    reused = completion_logps(model, tokenizer, prompts, completions, batch_size=3, share_prefix=True)
    assert [len(row) for row in reused] == [len(c) for c in completions]
    for plain_row, reused_row in zip(plain, reused):  # fp32 rounding only (the random Llama's sums reach -200)
        assert torch.allclose(torch.tensor(reused_row), torch.tensor(plain_row), atol=1e-5, rtol=1e-6)
    argmax = [max(range(len(row)), key=row.__getitem__) for row in plain]
    assert [max(range(len(row)), key=row.__getitem__) for row in reused] == argmax
    assert len({round(row[0], 3) for row in plain}) > len(plain) // 2  # the prompts matter: a mix-up would show


def test_the_shared_prefix_is_computed_once(prefix_model):
    """Counted at the model's input: with sharing, one pass of the P prefix tokens and then
    every batch P columns narrower than without (the same batches, the suffixes only)."""
    model, tokenizer = prefix_model
    prompts, completions = prefixed_prompts()
    prefix_len = len(token_ids(tokenizer, [LEAD])[0])
    shapes: list[tuple[int, int]] = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                           with_kwargs=True)  # fmt: skip
    try:
        completion_logps(model, tokenizer, prompts, completions, batch_size=2)
        plain, shapes[:] = shapes[:], []
        completion_logps(model, tokenizer, prompts, completions, batch_size=2, share_prefix=True)
        reused = shapes[:]
    finally:
        hook.remove()
    assert len(plain) == 4  # K = 3 in 2 prompts (one batch), K = 2 in 5 (three batches)
    assert reused[0] == (1, prefix_len)
    assert reused[1:] == [(rows, width - prefix_len) for rows, width in plain]
    fed = sum(rows * width for rows, width in reused)
    assert fed == sum(rows * width for rows, width in plain) - (len(prompts) - 1) * prefix_len


# ---------------------------------------------------------------- the mask, once for every layer


def test_one_additive_mask_serves_every_layer_and_keys_are_aligned(tiny_model):  # noqa: F811
    """What autograd keeps of the mask under SDPA: a boolean mask made SDPA build (and keep for the
    backward pass) a float copy in each of the 4 layers (4 saved tensors, measured); the additive
    mask is one tensor, in the model's dtype, read by every layer. The packed length is a multiple
    of MASK_ALIGNMENT."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(str(tiny_model))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).train()
    model.set_attn_implementation("sdpa")
    pairs = choice_pairs()[:3]
    batch = collate([tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in pairs],
                    tokenizer.pad_token_id)
    length = logps_module.pack(batch).ids.shape[1]
    assert length % logps_module.MASK_ALIGNMENT == 0
    assert length - logps_module.MASK_ALIGNMENT < batch.prompt_ids.shape[1] + 2 * batch.completion_ids.shape[1] <= length
    saved = {}

    def keep(tensor):
        if tensor.shape[-2:] == (length, length) and tensor.dim() == 4 and tensor.shape[1] == 1:
            saved[tensor.untyped_storage().data_ptr()] = tensor.dtype
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        logps, _ = batch_logps(model, batch)
    logps.sum().backward()
    assert list(saved.values()) == [torch.float32]
