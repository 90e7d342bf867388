"""A token prefix all prompts share, run once and reused (log-prob evaluation only,
``riskdpo.models.logps.completion_logps(share_prefix=True)``).

The prompts of an evaluation all begin with the same chat-template tokens
x_1..x_P, so those are run once, as one sequence of batch 1, and every batch
reuses their keys and values through a KV cache instead of recomputing them for
each prompt. Keys and values at position i depend on x_1..x_i only, so the
prefix's are the same in every prompt. P is the longest common token prefix of
all prompts of the call, capped at (shortest prompt - 1) tokens, so that every
prompt keeps a last position of its own to predict its completions' first
tokens; below `MIN_SHARED_PREFIX` tokens nothing is shared. Each batch then
packs the prompt *suffixes* x_(P+1)..x_n as `riskdpo.models.logps` packs whole
prompts, with the prefix's keys and values expanded to the batch's rows in a
fresh cache (each layer appends the batch's own keys after them), positions offset by P (suffix token x_(P+i) at
position P + i - 1, completion token t of every slot at n + t - 1, as in the
unshared pass) and the mask widened to the cached columns:

    allowed'[i, j] = True                   for j < P     (the prefix)
    allowed'[i, j] = allowed[i, j - P]      for j >= P    (the packed block mask)

so every query sees the whole prefix (padding queries too: still no row is
empty). transformers (5.x, `masking_utils`) hands a 4D mask to the attention
untouched, cache or not, so the mask must be [B, 1, L, P + L] itself. Padding
now lies between the prefix and a shorter suffix; no real query sees it.
Training does not share: it runs one forward without a cache (checkpointing,
DDP and FSDP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from riskdpo.models.cache_keyword import cache_keyword

#: Fewest common prompt tokens worth a pass of their own in `completion_logps(share_prefix=True)`.
MIN_SHARED_PREFIX = 8


@dataclass
class SharedPrefix:
    """The keys and values of a token prefix every prompt of a call starts with.

    ``layers``: one (keys, values) pair per layer, each [1, heads, P, head_dim].
    """

    length: int
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    def cache(self, rows: int) -> Any:
        """A fresh cache holding the prefix for `rows` sequences (a forward pass appends its own keys to it)."""
        from transformers import DynamicCache

        return DynamicCache([(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
                             for keys, values in self.layers])  # fmt: skip


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """The number of leading tokens all `prompts` share, at most (shortest prompt - 1),
    so every prompt keeps its last position, whose logits predict its completions' first tokens."""
    limit = min(map(len, prompts)) - 1
    first = prompts[0]
    length = 0
    while length < limit and all(prompt[length] == first[length] for prompt in prompts):
        length += 1
    return length


def run_prefix(model: Any, prefix_ids: Sequence[int], device: torch.device) -> SharedPrefix:
    """Keys and values of `prefix_ids` from one causal pass of batch 1.

    A plain `DynamicCache` (no config) keeps every layer's keys whole, as the
    packed pass's mask expects.
    """
    from transformers import DynamicCache

    cache = DynamicCache()
    ids = torch.tensor([list(prefix_ids)], dtype=torch.long, device=device)
    model(input_ids=ids, position_ids=torch.arange(ids.shape[1], device=device)[None], use_cache=True,
          logits_to_keep=1, **{cache_keyword(model): cache})  # fmt: skip
    return SharedPrefix(ids.shape[1], [(layer.keys, layer.values) for layer in cache.layers])
