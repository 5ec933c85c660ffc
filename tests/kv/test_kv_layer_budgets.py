"""Per-layer budgets (PyramidKV, entropy-based): layers hold caches of different lengths, and the session's
per-layer causal mask makes each layer see exactly what it kept (a window with per-layer budgets equals a
full forward whose per-layer masks hide the evicted tokens)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch

from tiny_models import make_lm, random_ids

from shoestring.errors import ShoestringError
from shoestring.kv import KVSession, SnapKV, Window
from shoestring.kv.allocators import Allocator, EntropyAllocator, Pyramid
from shoestring.kv.attention import chunk_mask


@pytest.fixture(scope="module")
def lm():
    return make_lm("llama")


@dataclass
class Fixed(Allocator):
    shares: tuple = ()
    name = "fixed"

    def allocate(self, budget, n_layers, info):
        return list(self.shares)


@contextmanager
def per_layer_masks(lm, masks):
    """Reference: a plain full forward whose attention in layer i uses ``masks[i]`` (additive)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    impl = lm.model.config._attn_implementation or "eager"
    mapping = ALL_ATTENTION_FUNCTIONS._local_mapping
    prev = mapping.get(impl)
    import sys

    def fn(module, q, k, v, mask, *a, **kw):
        inner = prev or (sys.modules[type(module).__module__].eager_attention_forward if impl == "eager"
                         else type(ALL_ATTENTION_FUNCTIONS)._global_mapping[impl])
        return inner(module, q, k, v, masks[module.layer_idx].to(q.dtype), *a, **kw)

    mapping[impl] = fn
    try:
        yield
    finally:
        mapping.pop(impl) if prev is None else mapping.__setitem__(impl, prev)


def window_mask(T, chunk, budget):
    t = torch.arange(T)
    start = (t // chunk) * chunk  # a token sees its chunk so far and the `budget` newest tokens kept before it
    allowed = (t[None, :] <= t[:, None]) & (t[None, :] >= start[:, None] - budget)
    return torch.zeros(1, 1, T, T).masked_fill(~allowed, float("-inf"))


@pytest.mark.parametrize("chunk", [1, 3])
def test_uneven_window_budgets_equal_per_layer_masked_forward(lm, chunk):
    n = lm.anatomy.n_layers
    shares = tuple(4 + 5 * i for i in range(n))  # every layer its own budget
    ids = random_ids(1, 31)
    s = KVSession(lm, Window(), budget=sum(shares) // n, chunk=chunk, allocator=Fixed(shares=shares))
    got = s.feed(ids)
    assert s.cache_tokens() == list(shares)
    with per_layer_masks(lm, [window_mask(31, chunk, b) for b in shares]):
        ref = lm.model(ids).logits
    assert torch.allclose(got, ref, atol=1e-5)
    uniform = KVSession(lm, Window(), budget=sum(shares) // n, chunk=chunk).feed(ids)
    assert not torch.allclose(got, uniform, atol=1e-3)  # the shares did change something


def test_chunk_mask_matches_the_causal_rule():
    m = chunk_mask(torch.zeros(2, 1, 3, 9, dtype=torch.bool), 3, 5)
    assert m.shape == (2, 1, 3, 5)
    assert m[0, 0].tolist() == [[True, True, True, False, False], [True, True, True, True, False], [True] * 5]
    f = chunk_mask(torch.zeros(1, 1, 2, 9), 2, 4)
    assert f[0, 0, 0, 3] == torch.finfo(torch.float32).min and f[0, 0, 1].eq(0).all()


def test_allocators_in_a_session_keep_the_total(lm):
    n = lm.anatomy.n_layers
    for alloc in (Pyramid(top=0.2), EntropyAllocator()):
        s = KVSession(lm, SnapKV(window=4), budget=10, chunk=6, allocator=alloc)
        s.feed(random_ids(2, 40))
        held = s.cache_tokens()
        assert sum(held) == 10 * n and held == s.budgets
        assert s.peak_tokens <= max(held) + 6 + 10
    pyr = KVSession(lm, Window(), budget=10, chunk=6, allocator=Pyramid(top=0.2))
    pyr.feed(random_ids(1, 40))
    assert pyr.cache_tokens()[0] > pyr.cache_tokens()[-1]


def test_an_attention_allocator_needs_attention(lm, monkeypatch):
    monkeypatch.setattr(type(lm), "resolve", lambda self, name: (_ for _ in ()).throw(
        ShoestringError("no pattern hook", "x")))
    with pytest.raises(ShoestringError, match="allocator 'entropy' needs attention"):
        KVSession(lm, Window(), budget=8, allocator=EntropyAllocator())
