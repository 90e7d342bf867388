"""Batched log-probabilities of completions given a prompt, one pass per prompt.

DPO needs, for every pair, log pi(chosen | prompt) and log pi(rejected | prompt);
choice evaluation needs log pi(label_k | prompt) for each option k. In both the
prompt (hundreds of tokens) dwarfs the completions (a label and EOS), so the
prompt is run once and shared:

1. the left-padded prompts go through the model once, keeping the KV cache and
   the logits of the last prompt position only (``logits_to_keep=1``);
2. the cache is repeated K times (one copy per completion of the group) and the
   right-padded completions go through the model on top of it.

The log-probability of completion c = (c_1..c_T) given prompt x is

    log pi(c | x) = sum_t log softmax(f(x, c_<t))[c_t]

where the logits for c_1 come from the last prompt position and those for c_t
(t > 1) from completion position t - 1. Position ids follow the real (unpadded)
token positions, so the result does not depend on batch size or padding.

Tokenisation contract: prompt ids = ``tokenizer(prompt).input_ids``; completion
ids = ``tokenizer(completion, add_special_tokens=False).input_ids + [eos]``.

With gradient checkpointing the model cannot keep a cache while training, so
`batch_logps` then runs each prompt+completion as one sequence (same numbers,
no sharing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import torch

Group = tuple[list[int], list[list[int]]]


@dataclass
class CompletionBatch:
    """B prompts, each with K completions, as padded tensors.

    ``prompt_ids``/``prompt_mask``: [B, Lp], left-padded.
    ``completion_ids``/``completion_mask``: [B*K, Lc], right-padded, group-major
    (the K completions of prompt b are rows b*K .. b*K + K - 1).
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    num_completions: int

    def to(self, device: torch.device | str) -> "CompletionBatch":
        return CompletionBatch(
            self.prompt_ids.to(device),
            self.prompt_mask.to(device),
            self.completion_ids.to(device),
            self.completion_mask.to(device),
            self.num_completions,
        )

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens: each prompt once plus every completion."""
        return int(self.prompt_mask.sum() + self.completion_mask.sum())


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
    return CompletionBatch(prompt_ids, prompt_mask, completion_ids, completion_mask, k)


def _token_logps(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over positions of log softmax(logits)[target], counting masked positions only."""
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logps * mask).sum(-1)


def _shared_prompt_logits(model: Any, batch: CompletionBatch) -> torch.Tensor:
    """Logits predicting each completion token, with one pass over each prompt."""
    k = batch.num_completions
    prompt_positions = (batch.prompt_mask.cumsum(-1) - 1).clamp(min=0)
    prompt_out = model(
        input_ids=batch.prompt_ids,
        attention_mask=batch.prompt_mask,
        position_ids=prompt_positions,
        use_cache=True,
        logits_to_keep=1,
    )
    cache = prompt_out.past_key_values
    cache.batch_repeat_interleave(k)
    prompt_lengths = batch.prompt_mask.sum(-1).repeat_interleave(k)
    steps = torch.arange(batch.completion_ids.shape[1], device=batch.completion_ids.device)
    completion_out = model(
        input_ids=batch.completion_ids,
        attention_mask=torch.cat([batch.prompt_mask.repeat_interleave(k, dim=0), batch.completion_mask], dim=1),
        position_ids=prompt_lengths.unsqueeze(1) + steps.unsqueeze(0),
        past_key_values=cache,
        use_cache=True,
    )
    first = prompt_out.logits[:, -1:, :].repeat_interleave(k, dim=0)
    return torch.cat([first, completion_out.logits[:, :-1, :]], dim=1)


def _concatenated_logits(model: Any, batch: CompletionBatch) -> torch.Tensor:
    """The same logits from whole prompt+completion sequences (no cache needed)."""
    k = batch.num_completions
    ids = torch.cat([batch.prompt_ids.repeat_interleave(k, dim=0), batch.completion_ids], dim=1)
    mask = torch.cat([batch.prompt_mask.repeat_interleave(k, dim=0), batch.completion_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    completion_len = batch.completion_ids.shape[1]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=completion_len + 1)
    return out.logits[:, :-1, :]


def _is_checkpointing(model: Any) -> bool:
    """Whether activation (gradient) checkpointing is on, across transformers versions."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, (DistributedDataParallel, FullyShardedDataParallel)):
        model = model.module  # the wrappers do not pass attributes through
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name) or hasattr(model, name):
            return bool(getattr(model, name))
    return False


def batch_logps(model: Any, batch: CompletionBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of every completion given its prompt.

    Returns ``(logps, token_counts)``, both [B, K]; differentiable with respect to
    the model's parameters. Logits are computed for completion positions only.
    """
    checkpointing = model.training and _is_checkpointing(model)
    logits = (_concatenated_logits if checkpointing else _shared_prompt_logits)(model, batch)
    logps = _token_logps(logits, batch.completion_ids, batch.completion_mask)
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
    token_limits: Sequence[int | None] | None = None,
) -> list[list[float]]:
    """log pi(completion | prompt) for every completion of every prompt, in input order.

    Prompts with different numbers of completions are batched separately (a batch
    holds groups of one size K); within a size, batches are grouped by length.
    `token_limits` (one per prompt, None = all) scores only the first tokens of
    each completion (EOS included in the count).
    """
    from tqdm.auto import tqdm

    groups = [tokenize_group(tokenizer, p, c) for p, c in zip(prompts, completions)]
    if token_limits is not None:
        groups = [(ids, [c[:limit] for c in comps]) for (ids, comps), limit in zip(groups, token_limits)]
    device = next(model.parameters()).device
    results: list[list[float]] = [[] for _ in groups]
    by_size: dict[int, list[int]] = {}
    for index, (_, group_completions) in enumerate(groups):
        by_size.setdefault(len(group_completions), []).append(index)
    batches = []
    for indices in by_size.values():
        lengths = [len(groups[i][0]) + max(map(len, groups[i][1])) for i in indices]
        batches += [[indices[j] for j in batch] for batch in length_grouped_order(lengths, batch_size)]
    was_training = model.training
    model.eval()
    for batch_indices in tqdm(batches, desc="log-probs", unit="batch", disable=not progress, leave=False):
        batch = collate([groups[i] for i in batch_indices], tokenizer.pad_token_id).to(device)
        logps, _ = batch_logps(model, batch)
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
