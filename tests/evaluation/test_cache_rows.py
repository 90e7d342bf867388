"""Cache rows kept and joined (riskdpo.evaluation.cache_rows), on real DynamicCache objects:
left padding hidden by the mask, leading columns no row sees dropped, sliding-window
caches not joinable; and the layer that appends in place (`ReservedLayer`) against
transformers' own. That decoding through them keeps greedy text is in test_generation.py."""

import pytest
import torch
from transformers import DynamicCache, MistralConfig, PhiConfig
from transformers.cache_utils import DynamicLayer

from riskdpo.evaluation.cache_rows import ReservedLayer, join_rows, joinable, keep_rows, reserved_cache

pytestmark = pytest.mark.floor  # touches the transformers model API: CI runs it again at the floor versions


def cache_of(*columns_per_row, layers=2):
    """A cache whose rows hold `columns_per_row[r]` real columns, left-padded to the longest,
    with the mask (1 for a real column, plus one pending token); a real key holds 10 × (its row
    number + 1) + the layer's number, a value minus that."""
    width = max(columns_per_row)
    mask = torch.tensor([[0] * (width - n) + [1] * (n + 1) for n in columns_per_row])
    real = mask[:, :width, None, None].float().transpose(1, 2)  # [rows, heads 1, columns, dim 1]
    rows = torch.arange(1, len(columns_per_row) + 1.0)[:, None, None, None]
    data = [((10 * rows + layer) * real, -(10 * rows + layer) * real) for layer in range(layers)]
    return DynamicCache(ddp_cache_data=data), mask


def test_join_left_pads_the_shorter_side_and_stacks_rows():
    cache, mask = join_rows([cache_of(2, 4), cache_of(6)])
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1], [1] * 7]
    for layer, held in enumerate(cache.layers):
        assert held.keys.shape == held.values.shape == (3, 1, 6, 1)
        expected = torch.tensor([[10.0], [20.0], [10.0]]) + layer  # the bottom side's row 1 is row 3 here
        assert torch.equal(held.keys[:, 0, :, 0], (expected * mask[:, :6]))
        assert torch.equal(held.values, -held.keys)
    _, other_way = join_rows([cache_of(6), cache_of(2, 4)])
    assert other_way.tolist() == [[1] * 7, [0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]]


def test_keep_rows_drops_the_columns_no_kept_row_sees():
    cache, mask = cache_of(2, 5, 3)
    kept, kept_mask = keep_rows(cache, mask, torch.tensor([0, 2]))
    assert kept_mask.tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]  # 2 of the 5 columns were row 2's alone
    assert kept.layers[1].keys[:, 0, :, 0].tolist() == [[0, 11, 11], [31, 31, 31]]
    same, same_mask = keep_rows(cache, mask, torch.tensor([1]))
    assert same_mask.tolist() == [[1] * 6] and same.get_seq_length() == 5


def test_only_caches_that_keep_every_column_are_joinable():
    assert joinable(DynamicCache(config=PhiConfig(num_hidden_layers=2)))
    assert not joinable(DynamicCache(config=MistralConfig(num_hidden_layers=2, sliding_window=64)))


@pytest.mark.parametrize("reserve", [1, 3, 100])
def test_a_reserved_layer_holds_what_a_dynamic_layer_holds_through_growth_and_row_selection(reserve):
    torch.manual_seed(0)
    reserved, dynamic = ReservedLayer(reserve), DynamicLayer()
    for step, columns in enumerate([5, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1]):
        keys, values = torch.randn(3, 2, columns, 4), torch.randn(3, 2, columns, 4)
        if step == 6:  # transformers' own row selection replaces the views with new tensors
            reserved.batch_select_indices(torch.tensor([0, 2, 1]))
            dynamic.batch_select_indices(torch.tensor([0, 2, 1]))
        got, expected = reserved.update(keys, values), dynamic.update(keys, values)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert reserved.get_seq_length() == dynamic.get_seq_length()


def test_a_step_within_the_reserve_writes_in_place_and_a_full_buffer_grows_by_at_most_the_reserve():
    layer = ReservedLayer(reserve=8)
    layer.update(torch.ones(2, 1, 10, 4), torch.ones(2, 1, 10, 4))
    start = layer.keys.data_ptr()
    for _ in range(8):  # 10 columns reserve min(8, 10) = 8 more
        layer.update(torch.zeros(2, 1, 1, 4), torch.zeros(2, 1, 1, 4))
        assert layer.keys.data_ptr() == start  # no copy of the cache
    layer.update(torch.zeros(2, 1, 1, 4), torch.zeros(2, 1, 1, 4))
    assert layer.keys.data_ptr() != start and layer.get_seq_length() == 19
    assert layer.keys[:, :, :10].eq(1).all() and layer.keys[:, :, 10:].eq(0).all()
    assert layer._buffers[0].shape[2] == 19 + 8


def test_kept_and_joined_rows_have_zero_padding_never_uninitialised_memory():
    full = ReservedLayer(reserve=50)
    full.update(torch.full((1, 1, 2, 1), float("nan")), torch.full((1, 1, 2, 1), float("nan")))
    del full  # freed memory holding NaNs, which a new buffer may reuse
    top, top_mask = cache_of(1)
    bottom, bottom_mask = cache_of(40)
    cache, mask = join_rows([(top, top_mask), (bottom, bottom_mask)])
    for layer in cache.layers:  # row 0's 39 padded columns hold exact zeros, its own 2 columns its keys
        assert layer.keys[0, :, :39].eq(0).all() and layer.values[0, :, :39].eq(0).all()
        assert torch.isfinite(layer.keys).all() and torch.isfinite(layer.values).all()
    assert mask[0].tolist() == [0] * 39 + [1, 1]


def test_a_reserved_cache_is_used_only_where_every_layer_is_full_attention():
    assert all(type(layer) is ReservedLayer for layer in reserved_cache(PhiConfig(num_hidden_layers=2), 8).layers)
    sliding = reserved_cache(MistralConfig(num_hidden_layers=2, sliding_window=64), 8)
    assert not any(isinstance(layer, ReservedLayer) for layer in sliding.layers) and not joinable(sliding)


def test_rows_of_a_reserved_cache_are_kept_in_place_as_a_copy_would_keep_them():
    plain, mask = cache_of(2, 5, 3, 4)
    reserved, reserved_mask = join_rows([cache_of(2, 5, 3, 4), cache_of(1)])  # ReservedLayers, 5 rows
    rows = torch.tensor([0, 2, 3])
    buffers = [layer._buffers[0].data_ptr() for layer in reserved.layers]
    kept, kept_mask = keep_rows(reserved, reserved_mask, rows)
    copied, copied_mask = keep_rows(plain, mask, rows)
    assert [layer._buffers[0].data_ptr() for layer in kept.layers] == buffers  # no new buffers
    assert torch.equal(kept_mask, copied_mask) and kept_mask.shape[1] == 5  # 1 leading column dropped
    for ours, theirs in zip(kept.layers, copied.layers):
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
    ours = kept.layers[0].update(torch.full((3, 1, 1, 1), 7.0), torch.full((3, 1, 1, 1), -7.0))
    assert ours[0].shape == (3, 1, 5, 1) and ours[0][:, 0, -1, 0].tolist() == [7.0] * 3
    assert torch.equal(ours[0][:, :, :4], copied.layers[0].keys)
