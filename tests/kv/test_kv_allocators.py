"""Budget allocators: the same total, shared differently; entropy of attention rows. (Wiring per-layer
budgets into KVSession needs a per-layer causal mask for chunked prefill: still to come in issue 7.)"""

from __future__ import annotations

import pytest
import torch

from shoestring.kv.allocators import ALLOCATORS, EntropyAllocator, Pyramid, Uniform, row_entropy


def test_totals_are_kept_and_shares_follow_the_weights():
    assert Pyramid(top=0.2).allocate(10, 3, {}) == [17, 10, 3]
    assert Uniform().allocate(7, 4, {}) == [7, 7, 7, 7]
    for name, cls in ALLOCATORS.items():
        attn = {i: torch.rand(1, 2, 3, 9) for i in range(5)}
        out = cls().allocate(6, 5, {"attn": attn})
        assert sum(out) == 30 and min(out) >= 1, name


def test_entropy_gives_spread_out_layers_more():
    flat = torch.ones(1, 2, 4, 16)
    peaked = torch.zeros(1, 2, 4, 16)
    peaked[..., 0] = 1.0
    assert row_entropy(flat).mean().item() == pytest.approx(torch.log(torch.tensor(16.0)).item())
    assert row_entropy(peaked).max().item() == 0
    out = EntropyAllocator(floor=0.1).allocate(8, 2, {"attn": {0: flat, 1: peaked}})
    assert out[0] > out[1] >= 1 and sum(out) == 16
