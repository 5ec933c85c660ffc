"""The tuned lens: closed-form translators, save/load, resume, store fit, KL below the logit lens."""

from __future__ import annotations

import random

import pytest
import torch

import shoestring
from shoestring.data import load_corpus, pack_batches
from shoestring.errors import ShoestringError
from shoestring.observe import TunedLens, fit_tuned_lens, fit_tuned_lens_from_store, lens_kl, logit_lens
from shoestring.observe.tuned_lens import LensMoments
from tiny_models import make_lm, tiny_tokenizer

CTX = 16


@pytest.fixture
def lm():
    return shoestring.LM(make_lm("llama", num_hidden_layers=3).model, tiny_tokenizer(), name="tiny", check=False)


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    folder = tmp_path / "texts"
    folder.mkdir()
    for d in range(12):
        words = [f"w{rng.randrange(2, 40) if rng.random() < 0.7 else rng.randrange(2, 100)}" for _ in range(60)]
        (folder / f"doc{d:02d}.txt").write_text(" ".join(words))
    return load_corpus(str(folder))


def test_moments_solve_equals_least_squares():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 500, 6, generator=g)  # two layers
    Y = X[1] @ torch.randn(6, 6, generator=g) + 0.5 + 0.01 * torch.randn(500, 6, generator=g)
    m = LensMoments(2, 6)
    m.add(X[:, :200], Y[:200])
    m.add(X[:, 200:], Y[200:])  # streaming in two pieces changes nothing
    W, b = m.solve(ridge=0.0)
    for i in range(2):
        design = torch.cat([X[i], torch.ones(500, 1)], 1).double()
        sol = torch.linalg.lstsq(design, Y.double()).solution  # [7, 6]
        torch.testing.assert_close(W[i].double(), sol[:6].T, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(b[i].double(), sol[6], atol=1e-4, rtol=1e-4)
    # a huge ridge pulls every translator to the identity (the logit lens)
    W_big, _ = m.solve(ridge=1e9)
    torch.testing.assert_close(W_big[0], torch.eye(6), atol=1e-4, rtol=0)


def test_a_near_constant_huge_coordinate_still_solves():
    # float32 sums of x^2 around 1e6 lose the tiny variance: the covariance can come out slightly negative
    g = torch.Generator().manual_seed(0)
    X = torch.randn(1, 4000, 8, generator=g)
    X[..., 2] = 1000.0 + 1e-3 * torch.randn(4000, generator=g)
    m = LensMoments(1, 8)
    for a in range(0, 4000, 1000):
        m.add(X[:, a : a + 1000], X[0, a : a + 1000])
    W, b = m.solve(ridge=1e-3)
    assert torch.isfinite(W).all() and torch.isfinite(b).all()
    pred = X[0] @ W[0].T + b[0]
    assert (pred - X[0]).pow(2).mean() < 1e-2  # still reproduces the target


def test_fit_save_load_and_kl_below_logit_lens(lm, corpus, tmp_path):
    lens = fit_tuned_lens(lm, corpus, tokens=10_000, context_length=CTX, batch_size=4, out=tmp_path / "lens",
                          progress=False)
    assert lens.layers == [0, 1] and lens.weight.shape == (2, 32, 32)
    assert 0 < lens.meta["tokens"] < 10_000  # the corpus ran out first, and the fit says how much it used
    back = TunedLens.load(tmp_path / "lens")
    assert back.layers == lens.layers and back.n_layers == 3
    torch.testing.assert_close(back.weight, lens.weight)
    # the last layer passes unchanged: the tuned lens there is the model's own distribution
    r = logit_lens(lm, "w3 w4 w5 w6", lens=back)
    torch.testing.assert_close(r.logprobs[-1], r.final, atol=1e-5, rtol=0)
    kl = lens_kl(lm, {"logit": None, "tuned": back}, corpus, tokens=2000, context_length=CTX, progress=False)
    assert kl["tuned"]["kl"][-1] == pytest.approx(0.0, abs=1e-4)
    for L in range(2):
        assert kl["tuned"]["kl"][L] < kl["logit"]["kl"][L]


def test_interrupted_fit_resumes_to_the_same_lens(lm, corpus, tmp_path, monkeypatch):
    full = fit_tuned_lens(lm, corpus, tokens=600, context_length=CTX, batch_size=2, progress=False)
    calls = {"n": 0}
    real_add = LensMoments.add

    def crash_on_fourth(self, xs, y):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        real_add(self, xs, y)

    monkeypatch.setattr(LensMoments, "add", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        fit_tuned_lens(lm, corpus, tokens=600, context_length=CTX, batch_size=2, out=tmp_path / "r",
                       checkpoint_every=1, progress=False)
    assert (tmp_path / "r" / "fit-state.safetensors").is_file()
    monkeypatch.setattr(LensMoments, "add", real_add)
    resumed = fit_tuned_lens(lm, corpus, tokens=600, context_length=CTX, batch_size=2, out=tmp_path / "r",
                             progress=False)
    assert resumed.meta["tokens"] == full.meta["tokens"] == 600
    torch.testing.assert_close(resumed.weight, full.weight, atol=1e-5, rtol=1e-5)
    with pytest.raises(ShoestringError, match="other settings"):
        fit_tuned_lens(lm, corpus, tokens=600, context_length=CTX, batch_size=3, out=tmp_path / "r", progress=False)


def test_fit_from_a_store_matches_the_streamed_fit(lm, corpus, tmp_path):
    from shoestring.store import cache_activations

    batches = ((b.tokens, b.doc_ids, b.positions) for b in pack_batches(corpus, lm.tokenizer, CTX, 4))
    cache_activations(lm, batches, hooks=["blocks.*.hook_resid_post"], out=tmp_path / "store", target_tokens=896,
                      context_length=CTX, dtype="float32", progress=False)
    from_store = fit_tuned_lens_from_store(tmp_path / "store", progress=False)
    streamed = fit_tuned_lens(lm, corpus, tokens=10_000, context_length=CTX, batch_size=4, progress=False)
    assert from_store.meta["tokens"] == streamed.meta["tokens"]
    torch.testing.assert_close(from_store.weight, streamed.weight, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(from_store.bias, streamed.bias, atol=1e-4, rtol=1e-4)


def test_bad_inputs(lm, corpus, tmp_path):
    with pytest.raises(ShoestringError, match="holds no tuned lens"):
        TunedLens.load(tmp_path)
    lens = fit_tuned_lens(lm, corpus, tokens=200, context_length=CTX, batch_size=2, progress=False)
    other = shoestring.LM(make_lm("llama", num_hidden_layers=2).model, tiny_tokenizer(), name="other", check=False)
    with pytest.raises(ShoestringError, match="not this model"):
        logit_lens(other, "w3 w4", lens=lens)
    with pytest.raises(ShoestringError, match="no translator for layer"):
        lens.translate(7, torch.zeros(32))
    with pytest.raises(ShoestringError, match="at least one token"):
        fit_tuned_lens(lm, corpus, tokens=0)
