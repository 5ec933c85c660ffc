"""KV-cache quantisation: the round-trip error is half a step, the bytes are the bytes, each token is quantised
once, a quantised cache runs a real model close to the float one, and it composes with eviction."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from tiny_models import FAMILIES, make_lm, random_ids

from shoestring.errors import ShoestringError
from shoestring.kv import KVSession, StreamingLLM
from shoestring.kv.quant import QuantizedLayer, cache_nbytes, dequantize, quantize, quantize_cache


@pytest.fixture(scope="module")
def lm():
    return make_lm("llama")


def per_token_bytes(d: int, bits: int, group: int) -> int:
    return d * bits // 8 + 2 * 2 * (d // group)  # codes + float16 scale and zero per group


def test_round_trip_error_is_at_most_half_a_step():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 50, 128, generator=g) * torch.rand(2, 3, 50, 1, generator=g) * 10 + 3  # varied ranges
    x[0, 0, 0, :32] = 7.25  # a constant group is exact
    err = {}
    for bits in (8, 4):
        codes, scale, zero = quantize(x, bits, 32)
        assert codes.dtype == torch.uint8 and codes.shape == (2, 3, 50, 128 * bits // 8)
        assert scale.dtype == zero.dtype == torch.float16 and scale.shape == (2, 3, 50, 4)
        e = (dequantize(codes, scale, zero, bits) - x).abs().unflatten(-1, (4, 32)).amax(-1)  # [.., groups]
        assert (e <= scale.float() / 2 * (1 + 1e-5) + 1e-6).all()
        assert e[0, 0, 0, 0] == 0
        lo, hi = x.unflatten(-1, (4, 32)).amin(-1), x.unflatten(-1, (4, 32)).amax(-1)
        slack = lo.abs() * 2 ** -10  # the zero-point rounded down to float16 widens the range by < 1 ulp
        assert (scale.float() <= (hi - lo + slack) / (2 ** bits - 1) * (1 + 2 ** -9) + 1e-7).all()  # not inflated
        err[bits] = e.max().item()
    assert err[8] < 0.1 * err[4]  # int4 is ~17x coarser (255 vs 15 steps)


def test_bytes_are_codes_plus_scales():
    x = torch.randn(1, 2, 10, 128)
    got = {}
    for bits in (8, 4):
        layer = QuantizedLayer(bits, group=32)
        layer.update(x, x.clone())
        got[bits] = layer.nbytes()
        assert got[bits] == 2 * (1 * 2 * 10) * per_token_bytes(128, bits, 32)  # keys and values
        assert layer.token_nbytes() == 2 * 2 * per_token_bytes(128, bits, 32)
    fp16 = 2 * 20 * 128 * 2
    assert got[8] / fp16 == pytest.approx(144 / 256) and got[4] / fp16 == pytest.approx(80 / 256)
    assert got[4] - 2 * 20 * 16 == (got[8] - 2 * 20 * 16) / 2  # int4 codes are half the int8 codes
    layer = QuantizedLayer(8, group=32, residual=4)  # the residual is held in float
    layer.update(x.half(), x.half())
    assert layer.nbytes() == 2 * 2 * (6 * per_token_bytes(128, 8, 32) + 4 * 128 * 2)


def test_requantising_dequantised_values_gives_the_same_codes():
    x = torch.randn(2, 2, 30, 64) * 4
    for bits in (8, 4):
        q = quantize(x, bits, 32)
        again = quantize(dequantize(*q, bits), bits, 32)
        assert all(torch.equal(a, b) for a, b in zip(q, again))


def test_each_token_is_quantised_once_and_eviction_gathers_codes():
    x = torch.randn(1, 2, 12, 16, dtype=torch.bfloat16)
    layer = QuantizedLayer(4, group=8, residual=3)
    stored = []
    for t in range(12):  # token by token: a token's codes never change once written
        k, v = layer.update(x[:, :, t:t + 1], -x[:, :, t:t + 1])
        assert k.dtype == torch.bfloat16 and torch.equal(k[:, :, -1:], x[:, :, t:t + 1])  # the new token: exact
        codes = layer._s["k"][0]
        assert all(torch.equal(codes[:, :, i], c) for i, c in enumerate(stored))
        stored = list(codes.unbind(2))
    assert layer.get_seq_length() == 12 and len(stored) == 9
    assert torch.equal(layer.keys[:, :, -3:], x[:, :, -3:])  # the residual is float
    assert not torch.equal(layer.keys[:, :, :9], x[:, :, :9])
    before = layer.keys
    idx = torch.tensor([[[0, 2, 5, 10], [1, 3, 8, 11]]])
    layer.gather(idx)  # exact for the quantised tokens, even in bfloat16; the residual is quantised once
    after = layer.keys
    want = before.gather(2, idx[..., None].expand(-1, -1, -1, 16))
    assert after.shape == (1, 2, 4, 16) and layer.values.shape == (1, 2, 4, 16)
    assert torch.equal(after[0, 0, :3], want[0, 0, :3]) and torch.equal(after[0, 1, :2], want[0, 1, :2])
    assert (after - want).abs().max() < 0.5
    layer.crop(-1)
    assert layer.get_seq_length() == 3 and torch.equal(layer.keys, after[:, :, :3])
    layer.update(x[:, :, :2], x[:, :, :2])
    layer.crop(-1)  # the newest tokens leave the float residual first
    assert layer.get_seq_length() == 4 and torch.equal(layer.keys[:, :, -1], x[:, :, 0])
    assert layer._s["k"][0].untyped_storage().nbytes() == layer._s["k"][0].numel()  # no view of a larger tensor


def run(model, ids, bits=None, group=32):
    """Prefill in two chunks, then decode one token at a time; all logits and the cache."""
    cache = DynamicCache(config=model.config)
    if bits:
        quantize_cache(cache, bits, group=group)
    cuts = [0, 16, 34] + list(range(35, ids.shape[1] + 1))
    logits = [model(ids[:, a:b], past_key_values=cache).logits for a, b in zip(cuts, cuts[1:])]
    return torch.cat(logits, 1), cache


@torch.no_grad()
def test_a_quantised_cache_runs_the_model_close_to_float(lm):
    ids = random_ids(2, 40)
    ref, fcache = run(lm.model, ids)
    broken = DynamicCache(config=lm.model.config)
    lm.model(ids[:, :16], past_key_values=broken)
    for layer in broken.layers:  # a garbage cache: what "broken" looks like
        layer.keys, layer.values = torch.randn_like(layer.keys), torch.randn_like(layer.values)
    bad = (lm.model(ids[:, 16:34], past_key_values=broken).logits - ref[:, 16:34]).abs().max()
    scale = ref.std()
    layers, kvh, d = len(fcache.layers), fcache.layers[0].keys.shape[1], fcache.layers[0].keys.shape[-1]
    for bits, tol in ((8, 0.01), (4, 0.1)):
        got, cache = run(lm.model, ids, bits)
        diff = (got - ref)[:, 16:].abs().max()  # the first chunk saw no cache
        assert torch.equal(got[:, :16], ref[:, :16]) and 0 < diff < tol * scale and diff < 0.1 * bad
        assert (got.argmax(-1) == ref.argmax(-1))[:, 16:].float().mean() >= (0.95 if bits == 8 else 0.8)
        assert cache.get_seq_length() == 40
        assert cache_nbytes(cache) == layers * 2 * (2 * kvh * 40) * per_token_bytes(d, bits, min(32, d))
    assert cache_nbytes(fcache) == layers * 2 * 2 * kvh * 40 * d * 4  # float32 model


@torch.no_grad()
@pytest.mark.parametrize("bits", [8, 4])
def test_quantisation_composes_with_eviction(lm, bits):
    ids, budget = random_ids(2, 33), 12
    ref = KVSession(lm, StreamingLLM(sinks=2), budget, chunk=5)
    s = KVSession(lm, StreamingLLM(sinks=2), budget, chunk=5)
    quantize_cache(s.cache, bits)
    want, got = ref.feed(ids), s.feed(ids)
    n = lm.anatomy.n_layers
    assert s.cache_tokens() == [budget] * n and all(isinstance(x, QuantizedLayer) for x in s.cache.layers)
    assert all(torch.equal(a, b) for a, b in zip(s.positions, ref.positions))  # the same tokens kept
    kvh, d = s.cache.layers[0].keys.shape[1], s.cache.layers[0].keys.shape[-1]
    assert cache_nbytes(s.cache) == n * 2 * (2 * kvh * budget) * per_token_bytes(d, bits, min(32, d))
    assert cache_nbytes(ref.cache) == ref.cache_bytes() == n * 2 * 2 * kvh * budget * d * 4
    assert torch.isfinite(got).all() and torch.equal(got[:, :5], want[:, :5])
    assert (got - want).abs().max() < (0.01 if bits == 8 else 0.1) * want.std()
    step = s.step(ids[:, :1])  # a decode step after eviction still runs and holds the budget
    assert torch.isfinite(step).all() and s.cache_tokens() == [budget] * n


def test_evicting_through_the_properties_matches_gather_in_float32():
    x = torch.randn(1, 2, 20, 32)
    a, b = QuantizedLayer(8, 16), QuantizedLayer(8, 16)
    a.update(x, x * 3), b.update(x, x * 3)
    idx = torch.randint(0, 20, (1, 2, 7)).sort(-1).values
    a.keys = a.keys.gather(2, idx[..., None].expand(-1, -1, -1, 32))  # what KVSession's eviction does
    a.values = a.values.gather(2, idx[..., None].expand(-1, -1, -1, 32))
    b.gather(idx)
    assert all(torch.equal(p, q) for k in "kv" for p, q in zip(a._s[k], b._s[k]))


def test_bad_input_is_one_line(lm):
    for bad in (dict(bits=3), dict(bits=8, group=0), dict(bits=8, residual=-1)):
        with pytest.raises(ShoestringError):
            quantize_cache(DynamicCache(config=lm.model.config), **bad)
    cache = quantize_cache(DynamicCache(config=lm.model.config), 8, group=3)  # head_dim 8
    with pytest.raises(ShoestringError, match="does not divide head_dim 8"):
        lm.model(random_ids(1, 4), past_key_values=cache)
    with pytest.raises(ShoestringError, match="sliding-window"):
        quantize_cache(DynamicCache(config=FAMILIES["gemma2"][0]()), 8)
    with pytest.raises(ShoestringError, match="not a plain DynamicLayer"):
        quantize_cache(quantize_cache(DynamicCache(config=lm.model.config), 8), 4)
