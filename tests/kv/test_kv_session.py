"""The compressed KV session: exact when nothing is evicted, the budget holds per layer and head, and what
is evicted is really gone (a window's logits equal a full forward whose mask hides the same tokens)."""

from __future__ import annotations

import pytest
import torch

from tiny_models import make_lm, random_ids

from shoestring.errors import ShoestringError
from shoestring.kv import POLICIES, Full, KVSession, KeyNorm, Random, StreamingLLM, Window


@pytest.fixture(scope="module")
def lm():
    return make_lm("llama")


def test_without_eviction_the_session_is_the_plain_forward(lm):
    ids = random_ids(2, 40)
    ref = lm.model(ids).logits
    for policy, budget in ((Full(), None), (Window(), 1000), (KeyNorm(), 40)):
        s = KVSession(lm, policy, budget, chunk=7)
        assert torch.allclose(s.feed(ids), ref, atol=1e-5)
        assert s.cache_tokens() == [40] * lm.anatomy.n_layers


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_holds_its_budget_per_layer(lm, name):
    s = KVSession(lm, POLICIES[name](), 12, chunk=5)
    s.feed(random_ids(2, 33))
    assert s.cache_tokens() == [12] * lm.anatomy.n_layers
    for p in s.positions:  # kept positions are real, distinct and in order
        assert p.shape[-1] == 12 and (p.diff(dim=-1) > 0).all() and int(p.max()) <= 32


def test_a_window_equals_a_forward_that_masks_the_evicted_tokens(lm):
    ids, B = random_ids(1, 30), 6
    s = KVSession(lm, Window(), B, chunk=1)  # token by token: token t sees t-B .. t
    got = s.feed(ids)
    t = torch.arange(30)
    allowed = (t[None, :] <= t[:, None]) & (t[None, :] >= t[:, None] - B)
    mask = torch.zeros(1, 1, 30, 30).masked_fill(~allowed, float("-inf"))
    ref = lm.model(ids, attention_mask=mask).logits
    assert torch.allclose(got, ref, atol=1e-5)
    assert not torch.allclose(got, lm.model(ids).logits, atol=1e-3)  # the eviction did change something


def test_streaming_keeps_the_sinks_and_the_newest(lm):
    s = KVSession(lm, StreamingLLM(sinks=3), 10, chunk=4)
    s.feed(random_ids(1, 41))
    assert s.positions[0][0, 0].tolist() == [0, 1, 2, 34, 35, 36, 37, 38, 39, 40]


def test_random_is_seeded_and_key_norm_keeps_small_keys(lm):
    a, b = KVSession(lm, Random(seed=1), 8, chunk=4), KVSession(lm, Random(seed=1), 8, chunk=4)
    ids = random_ids(1, 24)
    a.feed(ids), b.feed(ids)
    assert all(torch.equal(x, y) for x, y in zip(a.positions, b.positions))
    keys = torch.tensor([[[[3.0], [1.0], [2.0], [0.5]]]])
    idx = KeyNorm().keep(keys, keys, 2, positions=torch.arange(4).expand(1, 1, 4), layer=0, info={})
    assert idx.tolist() == [[[1, 3]]]


def test_bad_budgets_and_contexts_are_one_line(lm):
    with pytest.raises(ShoestringError, match="keeps nothing"):
        KVSession(lm, Window(), 0)
    s = KVSession(lm, Window(), 8)
    too_long = torch.randint(2, 50, (1, lm.model.config.max_position_embeddings + 1))
    with pytest.raises(ShoestringError, match="exceed the model's context"):
        s.feed(too_long)


def test_generate_and_stream_nll(lm):
    from shoestring.kv.perplexity import stream_nll

    ids = random_ids(1, 20)
    full = KVSession(lm, Full(), None).generate(ids, 6)
    plain = lm.model.generate(ids, max_new_tokens=6, do_sample=False, min_new_tokens=6, pad_token_id=0)[:, 20:]
    assert torch.equal(full, plain)
    s = KVSession(lm, StreamingLLM(sinks=2), 8, chunk=4)
    s.generate(ids, 10)
    assert s.cache_tokens() == [8] * lm.anatomy.n_layers and s.seen == 20 + 9
    nll = stream_nll(lm, random_ids(1, 40), Full(), None, chunk=16)
    ref = torch.nn.functional.cross_entropy(lm.model(random_ids(1, 40)).logits[0, :-1], random_ids(1, 40)[0, 1:],
                                            reduction="none")
    assert nll.shape == (39,) and torch.allclose(nll, ref, atol=1e-4)


def test_attention_scores_match_an_eager_forward(lm):
    """The accumulated attention H2O reads equals the column sums of the eager attention matrices, summed
    over each key-value head's query heads (checked with no eviction, chunks of 5)."""
    from shoestring.kv import H2O

    ids = random_ids(1, 23)
    s = KVSession(lm, H2O(), 10_000, chunk=5)
    s.feed(ids)
    eager = make_lm("llama", impl="eager")
    att = eager.model(ids, output_attentions=True).attentions  # per layer [1, q_heads, T, T]
    for i, a in enumerate(att):
        kvh = s.cache.layers[i].keys.shape[1]
        want = a.reshape(1, kvh, a.shape[1] // kvh, 23, 23).sum(2).sum(2)  # [1, kv_heads, T]
        assert torch.allclose(s.acc[i], want, atol=1e-4), i


def test_attention_policies_keep_what_they_score(lm):
    from shoestring.kv import H2O, TOVA, SnapKV

    for policy in (H2O(), TOVA(), SnapKV(window=4)):
        s = KVSession(lm, policy, 9, chunk=6)
        s.feed(random_ids(1, 30))
        assert s.cache_tokens() == [9] * lm.anatomy.n_layers
        assert all(a.shape[-1] == 9 for a in s.acc)
    s = KVSession(lm, SnapKV(window=4), 9, chunk=30)  # one prefill chunk: the last 4 (the window) stay
    s.feed(random_ids(1, 30))
    assert all(set(range(26, 30)) <= set(p[0, h].tolist()) for p in s.positions for h in range(p.shape[1]))
    s = KVSession(lm, H2O(recent_fraction=0.5), 8, chunk=1)
    s.feed(random_ids(1, 20))
    assert all(set(range(16, 20)) <= set(p[0, h].tolist()) for p in s.positions for h in range(p.shape[1]))


def test_query_aware_compresses_once_at_the_end(lm):
    from shoestring.kv import SnapKV

    ids = random_ids(1, 40)
    s = KVSession(lm, SnapKV(window=5), 12, chunk=8)
    s.feed(ids, query_aware=True)
    assert s.cache_tokens() == [12] * lm.anatomy.n_layers
    # the observation window is the last 5 prompt tokens, whatever chunk they arrived in; agnostic differs
    assert all(set(range(35, 40)) <= set(p[0, h].tolist()) for p in s.positions for h in range(p.shape[1]))
    a = KVSession(lm, SnapKV(window=5), 12, chunk=8)
    a.feed(ids)
    assert any(not torch.equal(x, y) for x, y in zip(a.positions, s.positions))
    # query-aware builds the whole cache first; chunked eviction never holds more than budget + chunk
    assert s.peak_tokens == 40 and a.peak_tokens == 12 + 8

