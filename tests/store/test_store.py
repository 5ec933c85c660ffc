"""The activation store: round trip, resume, reader, statistics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.store import ActivationStore, Manifest, cache_activations
from shoestring.store.stats import StatsCollector

from store_helpers import T_CTX, random_batches, tiny_lm


@pytest.fixture
def lm():
    return tiny_lm()

HOOKS = ["blocks.1.hook_resid_post", "blocks.0.mlp.hook_post"]
KW = dict(hooks=HOOKS, target_tokens=T_CTX * 4 * 20, context_length=T_CTX, shard_tokens=T_CTX * 8, progress=False)


def test_round_trip_equals_direct_capture(lm, tmp_path):
    m = cache_activations(lm, random_batches(), out=tmp_path / "s", **KW)
    assert m.status == "done" and m.n_tokens == T_CTX * 80 and len(m.shards) == 10
    store = ActivationStore(tmp_path / "s")
    rows = torch.cat(list(store.batches(HOOKS[0], 64, shuffle=False)))
    tokens = torch.cat([t for t, _, _ in random_batches()])[:80]
    with torch.no_grad(), lm.capture(HOOKS) as acts:
        lm.model(input_ids=tokens)
    assert torch.equal(rows, acts[HOOKS[0]].reshape(-1, 32).half())
    neurons = torch.cat(list(store.batches(HOOKS[1], 100, shuffle=False)))
    assert torch.equal(neurons, acts[HOOKS[1]].reshape(-1, 64).half())
    assert np.array_equal(store.tokens(), tokens.reshape(-1).numpy())
    assert store.verify() == []


def test_resume_after_interruption_equals_uninterrupted(lm, tmp_path):
    full = cache_activations(lm, random_batches(), out=tmp_path / "a", topk=3, **KW)

    def broken():
        for i, b in enumerate(random_batches()):
            if i == 7:  # mid-shard: 7 batches of 4 contexts, shards of 8 contexts
                raise KeyboardInterrupt
            yield b

    with pytest.raises(KeyboardInterrupt):
        cache_activations(lm, broken(), out=tmp_path / "b", topk=3, **KW)
    partial = Manifest.load(tmp_path / "b")
    assert partial.status == "running" and partial.n_contexts == 24  # three whole shards, nothing else
    resumed = cache_activations(lm, random_batches(), out=tmp_path / "b", topk=3,
                                skip_contexts_fn=lambda n: random_batches(skip=n), **KW)
    assert [s.checksum for s in resumed.shards] == [s.checksum for s in full.shards]
    for name in ("stats-000000080.safetensors",):
        from safetensors.torch import load_file

        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_store_made_by_another_model_or_hooks_is_refused(lm, tmp_path):
    cache_activations(lm, random_batches(), out=tmp_path / "s", **KW)
    with pytest.raises(ShoestringError, match="model=.tiny-0., not .tiny-1."):
        cache_activations(tiny_lm(seed=1, layers=4), random_batches(), out=tmp_path / "s", **KW)
    with pytest.raises(ShoestringError, match="hooks"):
        cache_activations(lm, random_batches(), out=tmp_path / "s", **{**KW, "hooks": [HOOKS[0]]})


def test_asking_for_more_tokens_extends_the_store(lm, tmp_path):
    cache_activations(lm, random_batches(), out=tmp_path / "s", **KW)
    m = cache_activations(lm, random_batches(), out=tmp_path / "s", skip_contexts_fn=lambda n: random_batches(skip=n),
                          **{**KW, "target_tokens": T_CTX * 120})
    assert m.n_tokens == T_CTX * 120
    ref = cache_activations(lm, random_batches(), out=tmp_path / "r", **{**KW, "target_tokens": T_CTX * 120})
    assert [s.checksum for s in m.shards] == [s.checksum for s in ref.shards]


def test_full_disk_is_refused_and_leaves_nothing(lm, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(ShoestringError, match="not enough disk"):
        cache_activations(lm, random_batches(), out=tmp_path / "s", **KW)
    assert not (tmp_path / "s").exists()


def test_unwritable_out_is_one_clear_error(lm, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ShoestringError, match="cannot write"):
        cache_activations(lm, random_batches(), out=blocker / "store", **KW)


def test_corpus_too_short_is_reported(lm, tmp_path):
    with pytest.raises(ShoestringError, match="ran out"):
        cache_activations(lm, random_batches(n_batches=3), out=tmp_path / "s", **KW)


def test_pattern_cannot_be_cached(lm, tmp_path):
    with pytest.raises(ShoestringError, match="pattern"):
        cache_activations(lm, random_batches(), out=tmp_path / "s", **{**KW, "hooks": ["blocks.0.attn.hook_pattern"]})


@pytest.fixture
def store(lm, tmp_path):
    cache_activations(lm, random_batches(), out=tmp_path / "s", topk=3,
                      meta={"bos_token_id": 0, "special_ids": [0, 1]}, **KW)
    return ActivationStore(tmp_path / "s")


@pytest.mark.parametrize("batch", [1, 7, 64, 1000, 5000])
def test_shuffled_batches_cover_every_row_once(store, batch):
    ordered = torch.cat(list(store.batches(HOOKS[0], 10_000, shuffle=False)))
    got = list(store.batches(HOOKS[0], batch, shuffle=True, seed=3))
    assert all(len(b) == batch for b in got[:-1]) and 0 < len(got[-1]) <= batch
    shuffled = torch.cat(got)
    assert shuffled.shape == ordered.shape and not torch.equal(shuffled, ordered)
    key = lambda x: torch.sort(x.float() @ torch.arange(32.0)).values  # noqa: E731
    assert torch.equal(key(shuffled), key(ordered))


def test_drop_last_and_epochs(store):
    got = list(store.batches(HOOKS[0], 100, epochs=2, drop_last=True))
    assert len(got) == (2 * len(store)) // 100 and all(len(b) == 100 for b in got)


def test_skip_bos_drops_exactly_the_bos_rows(store):
    rows = torch.cat(list(store.batches(HOOKS[0], 97, skip_bos=True)))
    assert len(rows) == len(store) - len(store) // T_CTX  # one BOS per context
    ordered = torch.cat(list(store.batches(HOOKS[0], 10_000, shuffle=False, skip_bos=True)))
    assert torch.equal(ordered, store.get(HOOKS[0], np.nonzero(store.tokens() != 0)[0]))


def test_random_access(store):
    ordered = torch.cat(list(store.batches(HOOKS[0], 10_000, shuffle=False)))
    idx = [0, 5, 127, 128, 129, 1279, 640]
    assert torch.equal(store.get(HOOKS[0], idx), ordered[idx])
    assert torch.equal(store.get(HOOKS[0], 300), ordered[300])
    with pytest.raises(ShoestringError, match="out of range"):
        store.get(HOOKS[0], len(store))
    with pytest.raises(ShoestringError, match="holds no"):
        store.get("blocks.2.hook_resid_post", 0)


def test_verify_detects_a_corrupted_shard(store):
    path = store.path / store.manifest.shards[3].file
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert store.verify() == [store.manifest.shards[3].file]


def test_incomplete_store_needs_allow_partial(lm, tmp_path):
    def broken():
        for i, b in enumerate(random_batches()):
            if i == 5:
                raise RuntimeError("boom")
            yield b

    with pytest.raises(RuntimeError):
        cache_activations(lm, broken(), out=tmp_path / "s", **KW)
    with pytest.raises(ShoestringError, match="incomplete"):
        ActivationStore(tmp_path / "s")
    assert len(ActivationStore(tmp_path / "s", allow_partial=True)) == 16 * T_CTX


def test_statistics_match_the_stored_activations(store):
    stats = StatsCollector.open(store.path, store.manifest.widths, topk=3, upto_context=80)
    x = torch.cat(list(store.batches(HOOKS[1], 10_000, shuffle=False)))  # fp16 as stored
    with torch.no_grad():
        pass
    m = stats.moments[HOOKS[1]]
    assert m.count == len(store)
    # Statistics are taken before the fp16 rounding of storage: compare loosely.
    assert torch.allclose(m.mean.float(), x.float().mean(0), atol=2e-3)
    assert torch.allclose(m.var.float(), x.float().var(0), rtol=2e-2, atol=1e-4)
    top = stats.top[HOOKS[1]]
    for unit in (0, 17, 63):
        brute = x[:, unit].float().topk(3)
        assert torch.allclose(top.values[unit], brute.values, atol=1e-2)
        assert torch.allclose(x[top.index[unit], unit].float(), brute.values, atol=1e-2)


def test_stats_only_keeps_no_activations(lm, tmp_path):
    m = cache_activations(lm, random_batches(), out=tmp_path / "s", stats_only=True, topk=2, **KW)
    assert m.stats_only and m.status == "done"
    store = ActivationStore(tmp_path / "s")
    with pytest.raises(ShoestringError, match="statistics only"):
        next(store.batches(HOOKS[0], 10))
    assert len(store.tokens()) == len(store)
    size = sum(f.stat().st_size for f in (tmp_path / "s").glob("shard-*"))
    assert size < len(store) * 40  # tokens, ids, positions and norms only


def test_top_contexts_and_directions(lm, tmp_path):
    directions = {HOOKS[0]: torch.eye(32)[:3] * 2.0}  # three directions: 2 x the first three axes
    cache_activations(lm, random_batches(), out=tmp_path / "s", topk=4, directions=directions, **KW)
    store = ActivationStore(tmp_path / "s")
    x = torch.cat(list(store.batches(HOOKS[0], 10_000, shuffle=False))).float()
    top = store.top_contexts(HOOKS[0], unit=1, window=3)
    assert len(top) == 4
    assert [t["token_index"] for t in top] == x[:, 1].topk(4).indices.tolist()
    assert abs(top[0]["value"] - 2 * float(x[:, 1].max())) < 0.05
    for t in top:
        assert t["tokens"][-1] == int(store.tokens()[t["token_index"]]) and len(t["tokens"]) <= 4
    neurons = store.top_contexts(HOOKS[1], unit=5)  # no direction given: per column
    assert len(neurons) == 4
    with pytest.raises(ShoestringError, match="out of range"):
        store.top_contexts(HOOKS[0], unit=3)
    with pytest.raises(ShoestringError, match="shape"):
        cache_activations(lm, random_batches(), out=tmp_path / "t", topk=2, directions={HOOKS[0]: torch.ones(2, 7)}, **KW)


def test_batches_straddling_shards_lose_no_context(lm, tmp_path):
    """A batch of 3 contexts with shards of 8: batches cross shard boundaries (the review's bug)."""
    kw = {**KW, "shard_tokens": T_CTX * 8, "target_tokens": T_CTX * 40}
    m = cache_activations(lm, random_batches(batch=3), out=tmp_path / "s", **kw)
    store = ActivationStore(tmp_path / "s")
    expect = torch.cat([t for t, _, _ in random_batches(batch=3)])[:40].reshape(-1).numpy()
    assert np.array_equal(store.tokens(), expect) and m.n_contexts == 40
    for shard in m.shards:  # norms are means over the shard's own rows
        norms = store.norms(HOOKS[0])[shard.first_context * T_CTX:(shard.first_context + shard.n_contexts) * T_CTX]
        assert abs(shard.norms[HOOKS[0]] - float(norms.mean())) < 1e-3


def test_resume_with_other_statistics_is_refused(lm, tmp_path):
    cache_activations(lm, random_batches(), out=tmp_path / "s", topk=2, **{**KW, "target_tokens": T_CTX * 16})
    with pytest.raises(ShoestringError, match="topk"):
        cache_activations(lm, random_batches(), out=tmp_path / "s", topk=5, **KW)
    with pytest.raises(ShoestringError, match="stats_only"):
        cache_activations(lm, random_batches(), out=tmp_path / "s", topk=2, stats_only=True, **KW)


def test_corpus_that_runs_out_keeps_its_tokens_and_can_be_finished(lm, tmp_path):
    with pytest.raises(ShoestringError, match="rerun with --tokens 320"):
        cache_activations(lm, random_batches(n_batches=5), out=tmp_path / "s", **KW)  # 20 contexts
    m = cache_activations(lm, random_batches(n_batches=5), out=tmp_path / "s", **{**KW, "target_tokens": 320})
    assert m.status == "done" and m.n_tokens == 320


def test_leaving_a_batch_loop_early_stops_the_prefetch_thread(store):
    import gc
    import threading
    import time

    for _ in range(3):
        it = store.batches(HOOKS[0], 2, mix_shards=1, prefetch=2)
        next(it)
        time.sleep(0.2)  # let the worker fill its queue
        it.close()
    del it
    gc.collect()
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name == "store-prefetch"]


def test_reader_bad_arguments(store):
    with pytest.raises(ShoestringError, match="mix_shards"):
        next(store.batches(HOOKS[0], 10, mix_shards=0))
    with pytest.raises(ShoestringError, match="holds no"):
        store.norms("blocks.2.hook_resid_post")
    with pytest.raises(ShoestringError, match="integers"):
        store.get(HOOKS[0], 2.7)
