"""Linear probes: the fitting maths on synthetic data, the splits and baselines, collect() on tiny models."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from tiny_models import make_lm, tiny_tokenizer

import shoestring
from shoestring.errors import ShoestringError
from shoestring.observe.labelled import load_labelled
from shoestring.observe.probes import (
    LogisticProbe,
    RidgeProbe,
    bootstrap_ci,
    choose_l2,
    collect,
    control_labels,
    probe_layers,
    split_indices,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def separable(n=200, d=20, seed=0, margin=0.0):
    X = torch.randn(n, d, generator=gen(seed))
    w = torch.randn(d, generator=gen(seed + 1))
    s = X @ w / w.norm()
    X = X[s.abs() > margin]
    return X, (X @ w > 0).long()


# -- the probes ---------------------------------------------------------------------------------
def test_logistic_separates_separable_data():
    X, y = separable(400, 10, margin=0.3)
    p = LogisticProbe(l2=1e-3).fit(X[:200], y[:200])
    assert p.score(X[200:], y[200:]) > 0.95


def test_logistic_multiclass_separates_clusters():
    centres = torch.randn(3, 16, generator=gen(3)) * 4
    y = torch.arange(3).repeat(60)
    X = centres[y] + torch.randn(180, 16, generator=gen(4))
    p = LogisticProbe(l2=1e-2).fit(X[:120], y[:120])
    assert p.score(X[120:], y[120:]) > 0.95


def test_random_labels_give_chance():
    X = torch.randn(240, 10, generator=gen(5))
    y = torch.randint(0, 2, (240,), generator=gen(6))
    r = probe_layers({0: X}, y, n_boot=200, control=False)
    assert abs(r.score[0] - 0.5) < 0.15
    assert abs(r.shuffled[0] - 0.5) < 0.15


def test_ridge_recovers_linear_map():
    X = torch.randn(300, 30, generator=gen(7))
    w = torch.randn(30, generator=gen(8))
    y = X @ w + 0.05 * torch.randn(300, generator=gen(9))
    p = RidgeProbe(l2=1e-4).fit(X[:200], y[:200])
    assert p.score(X[200:], y[200:]) > 0.95
    r = probe_layers({"x": X}, y.tolist(), task="regression", n_boot=200, control=False)
    assert r.metric == "r2" and r.score[0] > 0.95 and r.shuffled[0] < 0.2


def test_cv_picks_stronger_regulariser_for_noise():
    X, y = separable(120, 40, seed=10)
    noise = torch.randn(120, 40, generator=gen(11))
    l2_signal, _ = choose_l2(X, y, "classification")
    l2_noise, losses = choose_l2(noise, y, "classification")
    assert l2_noise > l2_signal and l2_noise >= 1.0 and losses[l2_noise] < losses[min(losses)]
    Xr = torch.randn(120, 40, generator=gen(12))
    yr = Xr @ torch.randn(40, generator=gen(13))
    assert choose_l2(torch.randn(120, 40, generator=gen(14)), yr, "regression")[0] > choose_l2(Xr, yr, "regression")[0]


def test_bootstrap_ci_contains_estimate_and_narrows():
    widths = []
    for n in (50, 2000):
        y = torch.randint(0, 2, (n,), generator=gen(15))
        pred = torch.where(torch.rand(n, generator=gen(16)) < 0.8, y, 1 - y)
        acc = float((pred == y).float().mean())
        lo, hi = bootstrap_ci(y, pred, n_boot=500)
        assert lo <= acc <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3


# -- splits, baselines, errors ------------------------------------------------------------------
def test_split_by_example_and_stratified():
    labels = [0] * 70 + [1] * 30
    tr, va = split_indices(labels, 0.3, seed=0)
    assert not set(tr) & set(va) and sorted(tr + va) == list(range(100))
    c = Counter(labels[i] for i in va)
    assert c == {0: 21, 1: 9}
    assert split_indices(labels, 0.3, seed=0) == (tr, va) and split_indices(labels, 0.3, seed=1) != (tr, va)


def test_control_task_and_selectivity():
    words = [f"word{i % 12}" for i in range(120)]
    texts = [f"{w} and more" for w in words]
    y = torch.tensor([i % 2 for i in range(120)])
    X = torch.randn(120, 8, generator=gen(17)) + 3 * y[:, None].float()
    r = probe_layers({0: X, 1: torch.randn(120, 8, generator=gen(18))}, y, texts=texts, n_boot=100)
    assert r.control is not None and r.selectivity[0] == pytest.approx(r.score[0] - r.control[0])
    assert r.best_layer == 0 and r.score[0] > 0.9
    assert "selectivity" in r.rows()[0] and json.loads(r.to_json())["best_layer"] == 0
    ctrl = control_labels(words, y.tolist(), seed=0)
    assert all(ctrl[i] == ctrl[j] for i in range(120) for j in range(120) if words[i] == words[j])
    assert probe_layers({0: X}, y, n_boot=10).control is None  # no keys: skipped, with a note


def test_errors(tmp_path):
    X = torch.randn(20, 4)
    with pytest.raises(ShoestringError, match="labels have one class"):
        probe_layers({0: X}, [1] * 20)
    with pytest.raises(ShoestringError, match="only 5 labelled examples"):
        probe_layers({0: X[:5]}, [0, 1, 0, 1, 0])
    with pytest.raises(ShoestringError, match="no labelled set"):
        load_labelled(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\n" + "".join(f"s{i},{i % 2}\n" for i in range(12)))
    with pytest.raises(ShoestringError, match="no column 'text'"):
        load_labelled(bad)
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps({"text": f"t{i}", "label": 1}) + "\n" for i in range(12)))
    with pytest.raises(ShoestringError, match="labels have one class"):
        load_labelled(one)
    few = tmp_path / "few.csv"
    few.write_text("text,label\n" + "".join(f"t{i},{'yes' if i % 2 else 'no'}\n" for i in range(6)))
    with pytest.raises(ShoestringError, match="only 6"):
        load_labelled(few)
    ok = tmp_path / "ok.csv"
    ok.write_text("text,label\n" + "".join(f"t{i},{'yes' if i % 2 else 'no'}\n" for i in range(12)))
    ds = load_labelled(ok)
    assert ds.labels[:2] == [0, 1] and ds.label_names == {0: "no", 1: "yes"}


def test_bundled_sets():
    s, t = load_labelled("sentiment"), load_labelled("tense")
    assert len(s) >= 200 and Counter(s.labels)[0] == Counter(s.labels)[1]
    assert len(t) >= 120 and set(t.labels) == {0, 1}
    assert s.label_names == {1: "positive", 0: "negative"} and len(set(s.texts)) == len(s)


# -- collect on tiny models ---------------------------------------------------------------------
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_collect_last_real_token_under_left_padding(family):
    lm = shoestring.LM(make_lm(family).model, tiny_tokenizer(), name="tiny", check=False)
    texts = ["w5 w6 w7", "w8", "w9 w10 w11 w12 w13"]
    feats = collect(lm, texts, batch_size=3)
    means = collect(lm, texts, position="mean", batch_size=3)
    assert sorted(feats) == list(range(lm.n_layers)) and feats[0].shape == (3, 32)
    for i, t in enumerate(texts):
        _, acts = lm.run_with_cache(lm.tokenize([t]), "blocks.*.hook_resid_post", stop_early=False)
        for L in feats:
            alone = acts[f"blocks.{L}.hook_resid_post"][0]
            torch.testing.assert_close(feats[L][i], alone[-1], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(means[L][i], alone.mean(0), atol=1e-4, rtol=1e-4)
    named = collect(lm, texts, hook="blocks.0.hook_mlp_out")
    assert list(named) == [0]


@pytest.mark.slow
def test_sentiment_probe_on_smollm2():
    lm = shoestring.load()
    ds = load_labelled("sentiment")
    r = probe_layers(collect(lm, ds.texts, batch_size=32), ds.labels, texts=ds.texts)
    for row in r.rows():
        print(row)
    best = r.layers.index(r.best_layer)
    assert len(r.layers) == 30 and r.score[best] > 0.8
    assert r.ci_low[best] <= r.score[best] <= r.ci_high[best] and r.selectivity[best] > 0
    assert max(r.shuffled) < 0.75
