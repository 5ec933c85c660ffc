"""feature_stats against brute force over the whole store; contexts, save / load, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.sae.features import FeatureStats, feature_stats, kept_rows

from sae_feature_helpers import COORD, HOOK, T_CTX, make_sae, make_store, planted_sae, text_rows
from tiny_models import tiny_tokenizer


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store") / "s")


@pytest.fixture(scope="module")
def sae():
    return planted_sae()


@pytest.fixture(scope="module")
def stats(sae, store):
    return feature_stats(sae, store, k=5, batch_size=100, bins=10)  # 100: chunks cut across contexts and shards


@pytest.fixture(scope="module")
def brute(sae, store):
    rows = text_rows(store)
    x = store.get(HOOK, rows).float()
    with torch.no_grad():
        return rows, x, sae.encode(x)


def test_bos_rows_are_the_only_rows_skipped(store):
    assert np.array_equal(np.nonzero(kept_rows(store))[0], text_rows(store))


def test_counts_sums_and_max_equal_brute_force(stats, brute):
    rows, _, z = brute
    assert stats.tokens == len(rows) == len(z)
    assert torch.equal(stats.counts, (z > 0).sum(0))
    assert torch.allclose(stats.density, (z > 0).double().mean(0))
    assert torch.allclose(stats.act_sum, z.double().sum(0), rtol=1e-5, atol=1e-6)
    assert torch.allclose(stats.act_max, z.amax(0).clamp_min(0), rtol=1e-5, atol=1e-7)
    assert stats.dead.sum() < stats.d_sae  # some latents fire, so the checks above mean something


def test_top_k_equals_a_topk_over_the_whole_store(stats, brute, store):
    rows, _, z = brute
    for lat in range(stats.d_sae):
        col = z[:, lat]
        fired = int((col > 0).sum())
        n = min(5, fired)
        want = col.topk(5)
        got_i, got_v = stats.top_index[lat], stats.top_values[lat]
        assert torch.allclose(got_v[:n], want.values[:n], rtol=1e-5), lat
        # same rows up to ties (the same token after BOS gives the very same activation in two contexts)
        at = np.searchsorted(rows, got_i[:n].numpy())
        assert np.array_equal(rows[at], got_i[:n].numpy()) and len(set(at)) == n
        assert torch.allclose(col[at], got_v[:n], rtol=1e-5), lat
        assert (got_i[n:] == -1).all() and torch.isinf(got_v[n:]).all()  # no zero "examples"
    assert not np.isin(stats.top_index.numpy(), np.arange(0, len(store), T_CTX)).any()  # never a BOS row


def test_histograms_are_exact_for_their_edges(stats, brute):
    _, _, z = brute
    assert torch.equal(stats.hist_counts.sum(1), stats.counts)
    for lat in torch.nonzero(stats.counts).flatten().tolist():
        up, vals = float(stats.hist_upper[lat]), z[:, lat][z[:, lat] > 0].double().numpy()
        assert up / 2 < vals.max() <= up and np.log2(up) == round(np.log2(up))  # smallest power of two >= max
        want, _ = np.histogram(vals, bins=10, range=(0, up))
        assert stats.hist_counts[lat].tolist() == want.tolist(), lat
        h = stats.histogram(lat)
        assert len(h["edges"]) == 11 and h["edges"][-1] == pytest.approx(up)


def test_the_planted_latent_tops_where_its_coordinate_peaks(stats, brute):
    rows, x, _ = brute
    best = int(x[:, COORD].argmax())
    assert int(stats.top_index[0, 0]) == rows[best]
    assert float(stats.top_values[0, 0]) == pytest.approx(float(x[best, COORD]), rel=1e-5)


def test_contexts_stay_in_one_document_and_peak_at_the_top_token(stats, store, sae):
    docs, ids = store.doc_ids(), store.tokens()
    tok = tiny_tokenizer()
    before, after = stats.window
    truncated = 0
    for lat in (0, *torch.nonzero(stats.counts).flatten()[:6].tolist()):
        ctxs = stats.contexts(lat, store, tok)
        assert len(ctxs) == int((stats.top_index[lat] >= 0).sum()) > 0
        for c in ctxs:
            i, m = c["token_index"], c["mark"]
            lo, hi = i - m, i - m + len(c["tokens"]) - 1
            assert (docs[lo:hi + 1] == docs[i]).all() and lo // T_CTX == hi // T_CTX  # one document, one context
            # as wide as allowed: each side stops at the window or at the document's edge
            assert lo == i - before or docs[lo - 1] != docs[i] or lo % T_CTX == 0
            assert hi == i + after or docs[hi + 1] != docs[i] or (hi + 1) % T_CTX == 0
            truncated += (hi - lo) < before + after
            assert c["token_ids"] == ids[lo:hi + 1].tolist() and c["tokens"] == [tok.decode([t]) for t in c["token_ids"]]
            assert c["values"][m] == pytest.approx(c["value"], rel=1e-4)
            assert max(c["values"]) == pytest.approx(c["value"], rel=1e-4)
    assert truncated > 0  # some window was cut at a document boundary, so the checks above bit


def test_max_tokens_stops_early(sae, store):
    s = feature_stats(sae, store, k=3, max_tokens=50, batch_size=16)
    rows = text_rows(store)
    assert s.tokens == 50
    assert int(s.top_index.max()) <= rows[49]


def test_save_and_load_round_trip(stats, store, sae, tmp_path):
    stats.save(tmp_path / "f")
    back = FeatureStats.load(tmp_path / "f")
    for name in ("counts", "act_sum", "act_max", "top_values", "top_index", "hist_counts", "hist_upper"):
        assert torch.equal(getattr(back, name), getattr(stats, name)), name
    assert (back.hook, back.tokens, back.window, back.meta) == (stats.hook, stats.tokens, stats.window, stats.meta)
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["feature_stats.json", "feature_stats.safetensors"]
    with pytest.raises(ShoestringError, match="sae="):
        back.contexts(0, store)
    assert back.contexts(0, store, sae=sae) == stats.contexts(0, store)


def test_bad_input_is_one_clear_error(store, sae, tmp_path):
    with pytest.raises(ShoestringError, match="wide"):
        feature_stats(make_sae("topk", 16, 32, k=2, hook_name=HOOK), store)
    with pytest.raises(ShoestringError, match="bins"):
        feature_stats(sae, store, bins=7)
    with pytest.raises(ShoestringError, match="holds no"):
        feature_stats(sae, store, hook="blocks.0.hook_resid_post")
    with pytest.raises(ShoestringError, match="out of range"):
        feature_stats(sae, store, k=2, max_tokens=10).contexts(999, store)
    with pytest.raises(ShoestringError, match="no readable"):
        FeatureStats.load(tmp_path / "nothing")
