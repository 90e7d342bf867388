"""Cache rows kept and joined (riskdpo.evaluation.cache_rows), on real DynamicCache objects:
left padding hidden by the mask, leading columns no row sees dropped, sliding-window
caches not joinable. That decoding through them keeps greedy text is in test_generation.py."""

import torch
from transformers import DynamicCache, MistralConfig, PhiConfig

from riskdpo.evaluation.cache_rows import join_rows, joinable, keep_rows


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
    cache, mask = join_rows(cache_of(2, 4), cache_of(6))
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1], [1] * 7]
    for layer, held in enumerate(cache.layers):
        assert held.keys.shape == held.values.shape == (3, 1, 6, 1)
        expected = torch.tensor([[10.0], [20.0], [10.0]]) + layer  # the bottom side's row 1 is row 3 here
        assert torch.equal(held.keys[:, 0, :, 0], (expected * mask[:, :6]))
        assert torch.equal(held.values, -held.keys)
    _, other_way = join_rows(cache_of(6), cache_of(2, 4))
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
