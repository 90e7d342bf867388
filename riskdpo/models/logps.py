"""Batched log-probabilities of completions given a prompt, one packed pass per prompt.

DPO needs, for every pair, log pi(chosen | prompt) and log pi(rejected | prompt);
choice evaluation needs log pi(label_k | prompt) for each option k. In both the
prompt (hundreds of tokens) dwarfs the completions (a label and EOS), so the
prompt is run once and shared, by packing each group into one sequence

    [pad.. prompt | c_1 pad.. | c_2 pad.. | ... | c_K pad..]

(prompts left-padded so they all end in column P - 1, completion k in the slot
of columns P + k*Lc .. P + (k+1)*Lc - 1) with a block attention mask: a prompt
token sees the prompt tokens before it, a token of completion k sees the whole
prompt and the tokens of c_k before it, never another completion; a padding
position sees only itself (so no row of the mask is empty). Position ids restart
at the prompt's length in every slot, so each completion is computed exactly as
if it followed the prompt alone. One forward pass, no KV cache: it works with
gradient checkpointing, DDP and FSDP alike (each block is gathered once).

The log-probability of completion c = (c_1..c_T) given prompt x is

    log pi(c | x) = sum_t log softmax(f(x, c_<t))[c_t]
                  = sum_t (f[c_t] - logsumexp(f))

where the logits for c_1 come from the last prompt position and those for c_t
(t > 1) from the slot position of c_(t-1). The lm_head runs on those positions
only (``logits_to_keep``), and the log-softmax runs over chunks of positions
(`LOGPS_CHUNK_POSITIONS`) recomputed in the backward pass, so no fp32 copy of the
full-vocabulary logits of every completion exists at once.

The block mask is a 4D tensor, which transformers passes to the attention as it
is (``masking_utils`` returns a 4D mask untouched). It is built once per pass as
an additive mask in the attention's compute dtype (0 where a query may attend,
the dtype's lowest value elsewhere; `attention_mask_for`), and every layer reads
that one tensor. A boolean mask would be turned into such a float bias by SDPA
in every layer, and training keeps each layer's copy for the backward pass:
B · L² · (bytes of the dtype) per layer, ~1.7 GB at batch 8 × 1,700 tokens over
36 layers in bf16; one additive mask costs that once. Measured on the CPU
(torch 2.13, a 4-layer tiny Llama): a boolean mask leaves one saved L × L float
tensor per layer, the additive mask one in all (tests/models/test_logps.py).
The packed length is padded on the left (prompt padding, hidden like any other)
to a multiple of `MASK_ALIGNMENT` key columns: CUDA's memory-efficient SDPA
kernel copies a bias whose last dimension is not a multiple of 16 into an
aligned one, in every layer, which would undo the sharing. Other attention
implementations (flash-attention, flex) take no custom 4D mask; there the
prompt is repeated with each completion as one ordinary causal sequence (same
numbers, no sharing).

Shared prefix (evaluation only, ``completion_logps(share_prefix=True)``): the
prompts' common token prefix is run once and its keys and values reused by every
batch (`riskdpo.models.shared_prefix`); each batch packs the prompt suffixes as
above, positions offset by the prefix length P, with the mask widened to P cached
columns that every query sees (`pack`'s ``prefix_len``).

Tokenisation contract: prompt ids = ``tokenizer(prompt).input_ids``; completion
ids = ``tokenizer(completion, add_special_tokens=False).input_ids + [eos]``.

Ending sets (evaluation only, ``completion_logps(end_set=E)``): the final token of
every completion (its EOS) stands for *any* token of a set E over the vocabulary,
so that a completion c = (c_1..c_{T-1}, eos) scores

    log pi(c_1..c_{T-1} | x) + log sum_{v in E} pi(v | x, c_1..c_{T-1})

(the probability that the answer starts with c_1..c_{T-1} and its next token is
one of E; `riskdpo.evaluation.choices` uses it to score a label as complete).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from riskdpo.models.cache_keyword import cache_keyword, unwrapped
from riskdpo.models.shared_prefix import MIN_SHARED_PREFIX, SharedPrefix, common_prefix_length, run_prefix

Group = tuple[list[int], list[list[int]]]

#: Positions whose log-softmax is computed at once (and recomputed in the backward
#: pass): 1024 positions of phi-2's 51,200-token vocabulary are 210 MB in fp32.
LOGPS_CHUNK_POSITIONS = 1024

#: Attention implementations that accept the packed pass's 4D block mask.
PACKED_ATTENTION = ("eager", "sdpa")

#: Key columns of a packed pass (cached prefix included) are padded to a multiple of this: the
#: memory-efficient SDPA kernel needs a bias whose rows start 16-element aligned, else it copies the
#: bias in every layer (module docstring).
MASK_ALIGNMENT = 16


@dataclass
class CompletionBatch:
    """B prompts, each with K completions, as padded tensors.

    ``prompt_ids``/``prompt_mask``: [B, Lp], left-padded.
    ``completion_ids``/``completion_mask``: [B*K, Lc], right-padded, group-major
    (the K completions of prompt b are rows b*K .. b*K + K - 1).
    ``num_tokens``: real (non-padding) tokens, each prompt once plus every
    completion, counted on the host when the batch is built (reading it never
    waits for the device).
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    num_completions: int
    num_tokens: int
    #: [V] bool or None: the tokens each completion's final token stands for (module docstring).
    end_set: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "CompletionBatch":
        return CompletionBatch(
            to_device(self.prompt_ids, device),
            to_device(self.prompt_mask, device),
            to_device(self.completion_ids, device),
            to_device(self.completion_mask, device),
            self.num_completions,
            self.num_tokens,
            None if self.end_set is None else to_device(self.end_set, device),
        )


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host tensor on `device` without the host waiting for the device.

    A copy from ordinary (pageable) host memory to a GPU makes PyTorch wait until
    the GPU has finished all queued work; from pinned memory the copy is queued
    like a kernel (the caching host allocator keeps the pinned block until it is done).
    """
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def tokenize_group(tokenizer: Any, prompt: str, completions: Sequence[str]) -> Group:
    """Token ids of a prompt and of its completions, each completion ending in EOS."""
    prompt_ids = list(tokenizer(prompt).input_ids)
    eos = tokenizer.eos_token_id
    completion_ids = [list(tokenizer(c, add_special_tokens=False).input_ids) + [eos] for c in completions]
    return prompt_ids, completion_ids


def collate(groups: Sequence[Group], pad_id: int) -> CompletionBatch:
    """Pad groups into a `CompletionBatch`; every group must have the same K."""
    sizes = {len(completions) for _, completions in groups}
    if len(sizes) != 1:
        raise ValueError(f"groups in one batch must have the same number of completions, got {sorted(sizes)}")
    (k,) = sizes
    prompt_len = max(len(prompt) for prompt, _ in groups)
    completion_len = max(len(c) for _, completions in groups for c in completions)
    prompt_ids = torch.full((len(groups), prompt_len), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(groups), prompt_len), dtype=torch.long)
    completion_ids = torch.full((len(groups) * k, completion_len), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((len(groups) * k, completion_len), dtype=torch.long)
    for b, (prompt, completions) in enumerate(groups):
        prompt_ids[b, prompt_len - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        prompt_mask[b, prompt_len - len(prompt) :] = 1
        for j, completion in enumerate(completions):
            completion_ids[b * k + j, : len(completion)] = torch.tensor(completion, dtype=torch.long)
            completion_mask[b * k + j, : len(completion)] = 1
    num_tokens = sum(len(prompt) + sum(map(len, completions)) for prompt, completions in groups)
    return CompletionBatch(prompt_ids, prompt_mask, completion_ids, completion_mask, k, num_tokens)


@dataclass
class PackedInputs:
    """One packed sequence per group (see the module docstring).

    ``ids``/``positions``: [B, L]; ``allowed``: [B, L, P + L], True where query i
    may attend to key j, the first P keys those of a shared prefix in the cache
    (P = 0 without one); ``keep``: [1 + K*(Lc-1)] columns whose logits are needed
    (the last prompt column, then every slot column but each slot's last).
    """

    ids: torch.Tensor
    positions: torch.Tensor
    allowed: torch.Tensor
    keep: torch.Tensor


def pack(batch: CompletionBatch, prefix_len: int = 0) -> PackedInputs:
    """Lay a batch out as `PackedInputs`, on the batch's device, without reading anything back from it.

    With `prefix_len` P > 0 the batch's prompts are the suffixes of prompts whose
    first P tokens are cached: positions start at P and every query may see the
    P prefix keys. The prompts get `alignment_padding` more columns of left padding,
    so that P + L is a multiple of `MASK_ALIGNMENT`.
    """
    k, completion_len = batch.num_completions, batch.completion_ids.shape[1]
    extra = alignment_padding(prefix_len + batch.prompt_ids.shape[1] + k * completion_len)
    prompt_ids = torch.nn.functional.pad(batch.prompt_ids, (extra, 0))  # id 0: any id will do, no query sees it
    prompt_mask = torch.nn.functional.pad(batch.prompt_mask, (extra, 0))
    groups, prompt_len = prompt_ids.shape
    device = prompt_ids.device
    ids = torch.cat([prompt_ids, batch.completion_ids.view(groups, k * completion_len)], dim=1)
    real = torch.cat([prompt_mask, batch.completion_mask.view(groups, k * completion_len)], dim=1).bool()
    steps = torch.arange(completion_len, device=device)
    slot_positions = (prompt_mask.sum(-1, keepdim=True) + steps).repeat(1, k)
    positions = prefix_len + torch.cat([(prompt_mask.cumsum(-1) - 1).clamp(min=0), slot_positions], dim=1)
    # segment of each column: 0 = prompt, s = completion s (1..K)
    segment = torch.cat([
        torch.zeros(prompt_len, dtype=torch.long, device=device),
        torch.arange(1, k + 1, device=device).repeat_interleave(completion_len),
    ])
    columns = torch.arange(segment.numel(), device=device)
    causal = columns[:, None] >= columns[None, :]
    visible = (segment[None, :] == 0) | (segment[:, None] == segment[None, :])
    allowed = (causal & visible)[None] & real[:, :, None] & real[:, None, :]
    allowed |= torch.eye(segment.numel(), dtype=torch.bool, device=device)
    allowed = torch.cat([allowed.new_ones(groups, segment.numel(), prefix_len), allowed], dim=2)
    slot_columns = prompt_len + completion_len * torch.arange(k, device=device)[:, None] + steps[None, :-1]
    keep = torch.cat([torch.arange(prompt_len - 1, prompt_len, device=device), slot_columns.flatten()])
    return PackedInputs(ids, positions, allowed, keep)


def packed_length(groups: Sequence[Group], prefix_len: int = 0) -> int:
    """Columns of `pack`'s sequence for `groups` collated into one batch (alignment padding included)."""
    prompt = max(len(prompt) for prompt, _ in groups)
    completions = [c for _, group in groups for c in group]
    columns = prefix_len + prompt + len(groups[0][1]) * max(map(len, completions))
    return columns + alignment_padding(columns) - prefix_len


def alignment_padding(columns: int) -> int:
    """Columns of padding that make `columns` a multiple of `MASK_ALIGNMENT`."""
    return -columns % MASK_ALIGNMENT


def attention_mask_for(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The [B, 1, L, P + L] additive mask, built once for every layer (module docstring):
    0 where `allowed`, the lowest value of `dtype` elsewhere. No row is all masked (each
    position sees at least itself), so the lowest value, not -inf, gives weight exactly 0."""
    return torch.zeros(allowed[:, None].shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed[:, None], torch.finfo(dtype).min
    )


def compute_dtype(model: Any) -> torch.dtype:
    """The dtype the attention computes in: autocast's, inside an autocast region, else that of the
    input embeddings (what the hidden states start as). An additive mask of another dtype still
    works; SDPA then converts it in every layer, which the shared mask is there to avoid."""
    device = next(model.parameters()).device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return unwrapped(model).get_input_embeddings().weight.dtype


def _chunk_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    return logits.gather(-1, targets) - torch.logsumexp(logits, dim=-1, keepdim=True)


def gathered_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[targets]: logits [B, N, V], targets [B, N, M] -> [B, N, M].

    Computed in fp32 over chunks of about `LOGPS_CHUNK_POSITIONS` positions; with
    gradients, each chunk is recomputed in the backward pass instead of being
    kept, so at most one chunk's fp32 copy exists at a time.
    """
    from torch.utils.checkpoint import checkpoint

    positions = max(1, LOGPS_CHUNK_POSITIONS // max(1, logits.shape[0]))
    recompute = torch.is_grad_enabled() and logits.requires_grad
    pieces = [
        checkpoint(_chunk_logps, chunk, target, use_reentrant=False) if recompute else _chunk_logps(chunk, target)
        for chunk, target in zip(logits.split(positions, dim=1), targets.split(positions, dim=1))
    ]
    return torch.cat(pieces, dim=1)


def end_logps(final_logits: torch.Tensor, end_set: torch.Tensor) -> torch.Tensor:
    """log sum_{v in E} softmax(z)_v for logits z [N, V] and a set E [V'] (V' <= V; ids past V' are not in E)."""
    logits = final_logits.float()
    inside = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    inside[: end_set.numel()] = end_set[: logits.shape[-1]]
    return torch.logsumexp(logits.masked_fill(~inside, float("-inf")), dim=-1) - torch.logsumexp(logits, dim=-1)


def _with_end_set(token_logps: torch.Tensor, final_logits: torch.Tensor, batch: CompletionBatch) -> torch.Tensor:
    """`token_logps` [B*K, Lc] with each completion's final token scored as its ending set (if the batch has one)."""
    if batch.end_set is None:
        return token_logps
    last = batch.completion_mask.sum(-1, keepdim=True) - 1  # [B*K, 1]
    return token_logps.scatter(1, last, end_logps(final_logits, batch.end_set)[:, None])


def packed_token_logps(model: Any, batch: CompletionBatch, prefix: SharedPrefix | None = None) -> torch.Tensor:
    """Per-token log-probs [B*K, Lc] of every completion, from one packed pass
    (after a cached `prefix` of the batch's prompts, if given)."""
    groups, k = batch.prompt_ids.shape[0], batch.num_completions
    packed = pack(batch, prefix.length if prefix else 0)
    logits = model(
        input_ids=packed.ids,
        attention_mask=attention_mask_for(packed.allowed, compute_dtype(model)),
        position_ids=packed.positions,
        logits_to_keep=packed.keep,
        use_cache=prefix is not None,
        **({cache_keyword(model): prefix.cache(groups)} if prefix else {}),
    ).logits  # [B, 1 + K*(Lc-1), V]
    completions = batch.completion_ids.view(groups, k, -1)
    # column 0 predicts the first token of every completion; each slot column the next token of its own
    first = gathered_logps(logits[:, :1], completions[:, None, :, 0])  # [B, 1, K]
    rest = gathered_logps(logits[:, 1:], completions[:, :, 1:].reshape(groups, -1, 1))  # [B, K*(Lc-1), 1]
    token_logps = torch.cat([first.reshape(groups * k, 1), rest.reshape(groups * k, -1)], dim=1)
    if batch.end_set is None:
        return token_logps
    # the column predicting completion r's final token t = n_r - 1: column 0 for t = 0, else slot column t - 1
    length = batch.completion_ids.shape[1]
    last = batch.completion_mask.sum(-1) - 1
    slot = torch.arange(groups * k, device=last.device) % k
    column = torch.where(last == 0, 0, 1 + slot * (length - 1) + last - 1)
    final = logits[torch.arange(groups * k, device=last.device) // k, column]  # [B*K, V]
    return _with_end_set(token_logps, final, batch)


def concatenated_token_logps(model: Any, batch: CompletionBatch) -> torch.Tensor:
    """The same per-token log-probs from whole prompt+completion sequences (no custom mask)."""
    k = batch.num_completions
    ids = torch.cat([batch.prompt_ids.repeat_interleave(k, dim=0), batch.completion_ids], dim=1)
    mask = torch.cat([batch.prompt_mask.repeat_interleave(k, dim=0), batch.completion_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    completion_len = batch.completion_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                   logits_to_keep=completion_len + 1).logits
    token_logps = gathered_logps(logits[:, :-1], batch.completion_ids.unsqueeze(-1)).squeeze(-1)
    if batch.end_set is None:
        return token_logps
    last = batch.completion_mask.sum(-1) - 1  # logits column t predicts completion token t
    return _with_end_set(token_logps, logits[torch.arange(len(last), device=last.device), last], batch)


def attention_implementation(model: Any) -> str:
    """The model's attention implementation (``sdpa``, ``eager``, ...), through DDP/FSDP wrappers."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.nn.parallel import DistributedDataParallel

    while isinstance(model, (DistributedDataParallel, FullyShardedDataParallel)):
        model = model.module  # the wrappers do not pass attributes through
    return model.config._attn_implementation


def batch_logps(
    model: Any, batch: CompletionBatch, prefix: SharedPrefix | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of every completion given its prompt (preceded by `prefix`, if given).

    Returns ``(logps, token_counts)``, both [B, K]; differentiable with respect to
    the model's parameters. Logits are computed for completion positions only.
    A prefix needs an attention implementation in `PACKED_ATTENTION`.
    """
    implementation = attention_implementation(model)
    if implementation in PACKED_ATTENTION:
        token_logps = packed_token_logps(model, batch, prefix)
    elif prefix is not None:
        raise ValueError(f"a shared prefix needs attention in {PACKED_ATTENTION}, not {implementation!r}")
    else:
        token_logps = concatenated_token_logps(model, batch)
    logps = (token_logps * batch.completion_mask).sum(-1)
    counts = batch.completion_mask.sum(-1)
    shape = (-1, batch.num_completions)
    return logps.view(shape), counts.view(shape)


def length_grouped_order(lengths: Sequence[int], batch_size: int, seed: int | None = None) -> list[list[int]]:
    """Batches of indices with similar lengths, so little compute goes to padding.

    Indices are sorted by length (stable) and cut into batches of `batch_size`;
    with a seed the order of the batches is shuffled reproducibly, so training
    does not see lengths in a monotone sequence.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if seed is not None:
        random.Random(seed).shuffle(batches)
    return batches


@torch.no_grad()
def completion_logps(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[Sequence[str]],
    batch_size: int = 8,
    progress: bool = False,
    share_prefix: bool = False,
    end_set: torch.Tensor | None = None,
) -> list[list[float]]:
    """log pi(completion | prompt) for every completion of every prompt, in input order.

    Prompts with different numbers of completions are batched separately (a batch
    holds groups of one size K); within a size, batches are grouped by length.
    `end_set` (a bool mask over the vocabulary) scores each completion's final
    token (its EOS) as any token of the set (module docstring). `share_prefix` runs the prompts'
    common token prefix once and caches it (module docstring), when the attention
    takes the packed mask and the prefix has at least `MIN_SHARED_PREFIX` tokens;
    not for training (it needs a KV cache, in eval mode, without gradients).
    """
    from tqdm.auto import tqdm

    groups = [tokenize_group(tokenizer, p, c) for p, c in zip(prompts, completions)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    prefix = None
    shared = common_prefix_length([ids for ids, _ in groups]) if share_prefix and groups else 0
    if shared >= MIN_SHARED_PREFIX and attention_implementation(model) in PACKED_ATTENTION:
        prefix = run_prefix(model, groups[0][0][:shared], device)
        groups = [(ids[shared:], comps) for ids, comps in groups]
    results: list[list[float]] = [[] for _ in groups]
    by_size: dict[int, list[int]] = {}
    for index, (_, group_completions) in enumerate(groups):
        by_size.setdefault(len(group_completions), []).append(index)
    batches = []
    for indices in by_size.values():
        lengths = [len(groups[i][0]) + max(map(len, groups[i][1])) for i in indices]
        batches += [[indices[j] for j in batch] for batch in length_grouped_order(lengths, batch_size)]
    for batch_indices in tqdm(batches, desc="log-probs", unit="batch", disable=not progress, leave=False):
        batch = collate([groups[i] for i in batch_indices], tokenizer.pad_token_id)
        batch = replace(batch, end_set=end_set).to(device)
        logps, _ = batch_logps(model, batch, prefix)
        for row, index in zip(logps.tolist(), batch_indices):
            results[index] = row
    model.train(was_training)
    return results


def pair_logps(model: Any, tokenizer: Any, pairs: Sequence[dict], batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of each pair's chosen and rejected completion given its prompt.

    `pairs` are dicts with ``prompt``, ``chosen`` and ``rejected`` (the prompt as
    the model sees it, already rendered). Returns two float tensors of shape [N].
    """
    scores = completion_logps(
        model, tokenizer, [p["prompt"] for p in pairs], [[p["chosen"], p["rejected"]] for p in pairs], batch_size
    )
    values = torch.tensor(scores, dtype=torch.float32).view(-1, 2)
    return values[:, 0], values[:, 1]
