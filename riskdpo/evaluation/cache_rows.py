"""A key/value cache that appends in place, and its rows kept, dropped and joined, for continuous batching.

**Appending in place.** transformers' `DynamicLayer` appends a decoding step's key
and value by ``torch.cat``, which copies the whole cache: with n cached columns a
step costs O(n) copying and an answer of m tokens O(m n + m^2). On the 2-core CPU
with SmolLM2 at batch 16 and ~225 columns that copying was 14% of a decoding step,
and it grows with the answer (reasoning answers run to thousands of tokens).
`ReservedLayer` keeps keys and values in buffers with spare columns and exposes
views of the filled part; a step writes its column into the buffer. When a buffer
is full it is reallocated with ``min(reserve, n)`` spare columns, so an answer is
copied O(log) times, and never more than ``reserve`` columns (generation passes
``max_new_tokens``) sit unused.

**Joining and keeping rows.** `riskdpo.evaluation.generation` keeps its batch full
by joining freshly prefilled prompts to rows that are already decoding. The two
caches differ in length, so the shorter is padded on the left to the longer's
length, its attention mask with zeros, and the rows are stacked. Every row then
attends exactly as before:

- a key is stored after the rotary embedding, so its position travels with it, and
  a row's next positions are passed to the model (``position_ids``), never read off
  column numbers: moving a row's keys to other columns changes nothing;
- a column the mask hides gets weight zero (a boolean mask, or -inf added before the
  softmax), and the padded columns hold zeros (never uninitialised memory: weight 0
  times NaN would still be NaN), so they add nothing.

When rows leave a batch, the leading columns that no remaining row sees (the
padding of rows that left) are dropped with them, so the cache is never longer
than its longest remaining row.

A mask here covers the cache's columns followed by the tokens not yet in it, the
same number for both sides of a join. Only a cache whose every layer keeps all
columns (full attention) can be cut and joined (`joinable`): a sliding-window layer
keeps only its last W columns and counts positions itself, so its rows cannot be
padded or moved; generation then uses transformers' own cache and lets rows leave
without joining.
"""

from __future__ import annotations

from typing import Any, Sequence

from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class ReservedLayer(DynamicLayer):
    """A full-attention cache layer whose keys and values are views of buffers with spare columns.

    Buffers are [rows, heads, capacity, head_dim]; ``keys``/``values`` are their
    first n rows and the filled columns from ``start`` (`keep` moves rows and the
    start inside the buffers instead of copying them out). Everything else
    transformers does with a `DynamicLayer` (sequence length, mask sizes) reads
    those views and works unchanged.
    """

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve = max(1, reserve)
        self._buffers: tuple[Any, Any] | None = None
        self._start = 0

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Write the new columns after the filled ones (reallocating when full); return all filled columns."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled = self.get_seq_length()
        needed = filled + key_states.shape[-2]
        if not self.holds_views() or self._start + needed > self._buffers[0].shape[-2]:
            keys, values = _allocate(key_states, needed, self.reserve), _allocate(value_states, needed, self.reserve)
            if filled:
                keys[:, :, :filled], values[:, :, :filled] = self.keys, self.values
            self._hold(keys, values, filled)
        rows, start = key_states.shape[0], self._start
        keys, values = self._buffers
        keys[:rows, :, start + filled : start + needed] = key_states
        values[:rows, :, start + filled : start + needed] = value_states
        self._hold(keys, values, needed, rows, start)
        return self.keys, self.values

    def keep(self, rows: Sequence[int], first: int) -> None:
        """Keep only `rows` (increasing) and the filled columns from `first` on, in place: each kept row
        is copied down over a dropped one inside the buffers, and the views start `first` columns later."""
        keys, values = self._buffers
        filled, start = self.get_seq_length(), self._start
        for target, row in enumerate(rows):
            if target != row:
                keys[target, :, start + first : start + filled] = keys[row, :, start + first : start + filled]
                values[target, :, start + first : start + filled] = values[row, :, start + first : start + filled]
        self._hold(keys, values, filled - first, len(rows), start + first)

    def holds_views(self) -> bool:
        """Whether ``keys`` is still the view this layer made (transformers' own methods, e.g. selecting
        rows, replace ``keys`` with new tensors; the next update then copies them into new buffers)."""
        if self._buffers is None or self.keys.dim() != 4:
            return False
        return self.keys.data_ptr() == self._buffers[0][:, :, self._start :].data_ptr()

    def _hold(self, keys: Any, values: Any, filled: int, rows: int | None = None, start: int = 0) -> None:
        rows = keys.shape[0] if rows is None else rows
        self._buffers, self._start = (keys, values), start
        self.keys, self.values = keys[:rows, :, start : start + filled], values[:rows, :, start : start + filled]
        self.device, self.is_initialized = keys.device, True


def _allocate(like: Any, columns: int, reserve: int, rows: int | None = None) -> Any:
    """An uninitialised buffer shaped like `like` (or with `rows` rows) with room for
    `columns` + min(reserve, columns) columns."""
    _, heads, _, dim = like.shape
    return like.new_empty(like.shape[0] if rows is None else rows, heads, columns + min(reserve, columns), dim)


def reserved_cache(config: Any, reserve: int) -> Any:
    """An empty cache for a model of `config`: `ReservedLayer`s (spare room for `reserve` columns) where
    every layer is full attention, transformers' own layers otherwise."""
    cache = DynamicCache(config=config)
    if joinable(cache):
        cache.layers = [ReservedLayer(reserve) for _ in cache.layers]
    return cache


def joinable(cache: Any) -> bool:
    """True when every layer of `cache` keeps all its columns, so that its rows can be cut apart and joined."""
    return all(type(layer) in (DynamicLayer, ReservedLayer) for layer in cache.layers)


def keep_rows(cache: Any, mask: Any, rows: Any) -> tuple[Any, Any]:
    """The cache and mask of `rows` only (a 1-D index tensor), without the leading columns none of them sees.

    A cache of `ReservedLayer`s is cut in place (`ReservedLayer.keep`: no new buffers, each kept
    row copied at most once); any other is copied into a new one."""
    mask = mask[rows]
    first = int(mask.any(dim=0).int().argmax())  # every row sees its own tokens, so some column is seen
    kept = rows.tolist()
    if kept == sorted(kept) and all(isinstance(layer, ReservedLayer) and layer.holds_views() for layer in cache.layers):
        for layer in cache.layers:
            layer.keep(kept, first)
        return cache, mask[:, first:]
    blocks = [[(layer.keys[rows, :, first:], layer.values[rows, :, first:])] for layer in cache.layers]
    return _stacked_cache(cache, blocks), mask[:, first:]


def join_rows(parts: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
    """One batch of the rows of (cache, mask) pairs, in order; the shorter ones are left-padded."""
    import torch

    width = max(mask.shape[1] for _, mask in parts)
    blocks = [[(layer.keys, layer.values) for layer in layers] for layers in zip(*(cache.layers for cache, _ in parts))]
    masks = [torch.nn.functional.pad(mask, (width - mask.shape[1], 0)) for _, mask in parts]
    return _stacked_cache(parts[0][0], blocks), torch.cat(masks)


def _stacked_cache(like: Any, blocks: Sequence[Sequence[tuple[Any, Any]]]) -> Any:
    """A cache whose layer i holds the (keys, values) blocks of blocks[i] stacked along rows, each
    right-aligned to the widest and zero on its left; the spare room of `like`'s first layer."""
    reserve = getattr(like.layers[0], "reserve", 1)
    layers = []
    for layer_blocks in blocks:
        width = max(keys.shape[2] for keys, _ in layer_blocks)
        layer = ReservedLayer(reserve)
        stacked = [_right_aligned([part[i] for part in layer_blocks], width, reserve) for i in (0, 1)]
        layer._hold(stacked[0], stacked[1], width)
        layers.append(layer)
    cache = DynamicCache()
    cache.layers = layers
    return cache


def _right_aligned(parts: Sequence[Any], width: int, reserve: int) -> Any:
    """A buffer holding `parts` stacked along rows, each in the last of `width` columns, zeros before."""
    buffer = _allocate(parts[0], width, reserve, rows=sum(part.shape[0] for part in parts))
    row = 0
    for part in parts:
        pad = width - part.shape[2]
        buffer[row : row + part.shape[0], :, :pad] = 0
        buffer[row : row + part.shape[0], :, pad:width] = part
        row += part.shape[0]
    return buffer
