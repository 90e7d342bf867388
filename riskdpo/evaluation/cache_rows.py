"""Rows of a key/value cache kept, dropped and joined, for continuous batching.

`riskdpo.evaluation.generation` keeps its batch full by joining freshly prefilled
prompts to rows that are already decoding. The two caches differ in length, so the
shorter is padded on the left to the longer's length, its attention mask with
zeros, and the two are concatenated along the batch axis. Every row then attends
exactly as before:

- a key is stored after the rotary embedding, so its position travels with it, and
  a row's next positions are passed to the model (``position_ids``), never read off
  column numbers: moving a row's keys to other columns changes nothing;
- a column the mask hides gets weight zero (a boolean mask, or -inf added before the
  softmax), so the zeros padded in add nothing.

When rows leave a batch, the leading columns that no remaining row sees (the
padding of rows that left) are dropped with them, so the cache is never longer
than its longest remaining row.

A mask here covers the cache's columns followed by the tokens not yet in it, the
same number for both sides of a join. Only a cache whose every layer keeps all
columns (`DynamicLayer`, full attention) can be cut and joined (`joinable`): a
sliding-window layer keeps only its last W columns and counts positions itself, so
its rows cannot be padded or moved; generation then lets rows leave without joining.
"""

from __future__ import annotations

from typing import Any


def joinable(cache: Any) -> bool:
    """True when every layer of `cache` keeps all its columns, so that its rows can be cut apart and joined."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


def keep_rows(cache: Any, mask: Any, rows: Any) -> tuple[Any, Any]:
    """The cache and mask of `rows` only (a 1-D index tensor), without the leading columns none of them sees."""
    from transformers.cache_utils import DynamicCache

    mask = mask[rows]
    first = int(mask.any(dim=0).int().argmax())  # every row sees its own tokens, so some column is seen
    layers = [(layer.keys[rows, :, first:], layer.values[rows, :, first:]) for layer in cache.layers]
    return DynamicCache(ddp_cache_data=layers), mask[:, first:]


def join_rows(first: tuple[Any, Any], second: tuple[Any, Any]) -> tuple[Any, Any]:
    """One batch of the rows of two (cache, mask) pairs, first's rows on top; the shorter is left-padded."""
    from transformers.cache_utils import DynamicCache

    width = max(first[1].shape[1], second[1].shape[1])
    pads = (width - first[1].shape[1], width - second[1].shape[1])
    layers = [
        (_stack(top.keys, bottom.keys, pads, dim=2), _stack(top.values, bottom.values, pads, dim=2))
        for top, bottom in zip(first[0].layers, second[0].layers)
    ]
    return DynamicCache(ddp_cache_data=layers), _stack(first[1], second[1], pads, dim=1)


def _stack(top: Any, bottom: Any, pads: tuple[int, int], dim: int) -> Any:
    """`top` over `bottom` (batch axis 0), each first given pads[i] zero columns at the start of axis `dim`."""
    import torch

    def padded(tensor, width):
        zeros = tensor.new_zeros(*tensor.shape[:dim], width, *tensor.shape[dim + 1 :])
        return torch.cat([zeros, tensor], dim=dim)

    return torch.cat([padded(top, pads[0]), padded(bottom, pads[1])])
