"""Training: loss goes down, several SAEs in one pass, exact resume, bf16, the schedule, b_dec's geometric
median, the saved folders, and the two data sources (an activation store, a stream from the model)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from shoestring.data.corpus import Corpus, Document
from shoestring.errors import ShoestringError
from shoestring.sae import load_sae, make_sae
from shoestring.sae.sources import StoreSource, StreamSource
from shoestring.sae.train import TrainConfig, geometric_median, lr_at, train_saes

from sae_helpers import ToySource, store_helpers, one_thread  # noqa: F401 (one_thread: an autouse fixture)
from tiny_models import make_model, tiny_tokenizer

D, NF, B = 16, 48, 128
TOY = dict(d=D, n_features=NF, p=0.06, seed=3)


def _cfg(steps, **kw):
    base = dict(tokens=steps * B, batch_size=B, lr=3e-3, lr_warmup=0.05, lr_decay=0.2, checkpoint_every=10 ** 9,
                log_every=5)
    return TrainConfig(**{**base, **kw})


def _topk(k=4, d_sae=64, seed=0, **kw):
    return make_sae("topk", D, d_sae, k=k, seed=seed, hook_name="toy", **kw)


def test_loss_goes_down_and_results():
    losses = []
    sae = _topk()
    res, = train_saes([sae], ToySource(B, **TOY), _cfg(100, lr=1e-2), progress=False,
                      on_step=lambda step, row: losses.append(row["sae0"]["loss"]))
    assert len(losses) == 100
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert 0.5 < res["explained_variance"] <= 1.0
    assert 0 < res["l0"] <= 4
    assert res["steps"] == 100 and res["tokens"] == 100 * B and res["architecture"] == "topk"
    assert res["density"].shape == (64,) and 0 <= res["dead_fraction"] <= 1
    assert not sae.training and sae.cfg.scaling_factor == pytest.approx(res["scaling_factor"])


def test_several_saes_in_one_pass_each_get_their_own_results():
    saes = [_topk(4, seed=0), _topk(8, seed=0), make_sae("standard", D, 64, seed=0, l1_coefficient=0.3)]
    init = [s.W_dec.detach().clone() for s in saes]
    rows = []
    res = train_saes(saes, ToySource(B, **TOY), _cfg(40), progress=False, on_step=lambda s, r: rows.append(r))
    assert len(res) == 3
    assert [r["architecture"] for r in res] == ["topk", "topk", "standard"]
    assert [r["k"] for r in res] == [4, 8, None]
    assert res[0]["l0"] <= 4 < res[1]["l0"] <= 8
    assert all(r["explained_variance"] > 0.3 for r in res)
    assert res[1]["explained_variance"] > res[0]["explained_variance"]  # more latents, better reconstruction
    # every SAE trained (its own parameters moved) and they all differ
    for s, w in zip(saes, init):
        assert not torch.allclose(s.W_dec, w)
    assert not torch.allclose(saes[0].W_dec, saes[1].W_dec)
    assert set(rows[-1]) >= {"sae0", "sae1", "sae2", "step", "lr"} and "l1" in rows[-1]["sae2"]


def test_one_sae_alone_trains_like_it_does_beside_others():
    """Feeding the same batches to several SAEs must not couple them."""
    alone = _topk(4, seed=1)
    train_saes([alone], ToySource(B, **TOY), _cfg(15), progress=False)
    pair = [_topk(8, seed=2), _topk(4, seed=1)]
    train_saes(pair, ToySource(B, **TOY), _cfg(15), progress=False)
    assert torch.equal(alone.W_enc, pair[1].W_enc) and torch.equal(alone.b_dec, pair[1].b_dec)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu"])
def test_resume_after_interruption_equals_uninterrupted(arch, tmp_path):
    def saes():
        kw = dict(k=4) if "topk" in arch else {}
        # wide, and a one-batch dead window: latents that miss a batch count as dead, so AuxK (topk/batchtopk)
        # is active through the run and the dead-latent counters must resume too
        return [make_sae(arch, D, 256, seed=0, hook_name="toy", **kw), make_sae("standard", D, 32, seed=1)]

    cfg = _cfg(24, checkpoint_every=4, dead_tokens=B)
    rows = []
    full = train_saes(saes(), ToySource(B, **TOY), cfg, out=tmp_path / "a", progress=False,
                      on_step=lambda step, row: rows.append(row))
    if "topk" in arch:
        assert any("aux" in r["sae0"] for r in rows[9:])  # AuxK was on after the resume point

    def stop(step, row):
        if step == 11:  # the last checkpoint was at step 8
            raise _Stop

    with pytest.raises(_Stop):
        train_saes(saes(), ToySource(B, **TOY), cfg, out=tmp_path / "b", progress=False, on_step=stop)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 8
    assert not (tmp_path / "b" / "sae-0").exists()
    seen = []
    resumed = train_saes(saes(), ToySource(B, **TOY), cfg, out=tmp_path / "b", progress=False,
                         on_step=lambda step, row: seen.append(step))
    assert seen[0] == 9 and seen[-1] == 24
    for i in range(2):
        a = load_file(str(tmp_path / "a" / f"sae-{i}" / "sae_weights.safetensors"))
        b = load_file(str(tmp_path / "b" / f"sae-{i}" / "sae_weights.safetensors"))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (i, key)
        assert torch.equal(full[i]["density"], resumed[i]["density"])
        assert full[i]["scaling_factor"] == resumed[i]["scaling_factor"]


def test_resume_with_other_settings_is_refused(tmp_path):
    cfg = _cfg(12, checkpoint_every=4)

    def stop(step, row):
        if step == 6:
            raise _Stop

    with pytest.raises(_Stop):
        train_saes([_topk()], ToySource(B, **TOY), cfg, out=tmp_path / "o", progress=False, on_step=stop)
    with pytest.raises(ShoestringError) as e:
        train_saes([_topk()], ToySource(B, **TOY), _cfg(12, checkpoint_every=4, lr=1e-3), out=tmp_path / "o",
                   progress=False)
    assert "lr" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ShoestringError) as e:
        train_saes([_topk(d_sae=32)], ToySource(B, **TOY), cfg, out=tmp_path / "o", progress=False)
    assert "other SAEs" in str(e.value) and "\n" not in str(e.value)


def test_bf16_compute_runs_and_reconstructs():
    saes = [_topk(), make_sae("jumprelu", D, 64, seed=0, l0_coefficient=0.01)]
    res = train_saes(saes, ToySource(B, **TOY), _cfg(30, lr=1e-2, compute_dtype="bfloat16"), progress=False)
    for r in res:
        assert r["explained_variance"] == r["explained_variance"]  # not NaN
        assert 0.3 < r["explained_variance"] <= 1.0
    for s in saes:
        assert s.W_enc.dtype == torch.float32 and torch.isfinite(s.W_enc).all()


def test_bad_train_config_raises():
    for kw, words in [(dict(compute_dtype="float16"), "compute dtype"), (dict(b_dec_init="median"), "b_dec_init"),
                      (dict(tokens=B - 1), "less than one batch")]:
        with pytest.raises(ShoestringError) as e:
            train_saes([_topk()], ToySource(B, **TOY), _cfg(10, **kw), progress=False)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_data_running_out_raises():
    class Short:
        def batches(self, skip=0):
            src = ToySource(B, **TOY).batches(skip)
            for _ in range(5 - skip):
                yield next(src)

    with pytest.raises(ShoestringError) as e:
        train_saes([_topk()], Short(), _cfg(10), progress=False)
    assert "ran out" in str(e.value)


def test_lr_schedule_shape():
    cfg = TrainConfig(tokens=1000 * 10, batch_size=10, lr=1.0, lr_warmup=0.1, lr_decay=0.2)
    lrs = [lr_at(s, cfg) for s in range(cfg.steps)]
    assert lrs[0] == pytest.approx(1 / 100)
    assert all(a < b for a, b in zip(lrs[:100], lrs[1:100]))  # warm-up: rising ...
    assert lrs[99] == 1.0 and all(v == 1.0 for v in lrs[99:800])  # ... to lr, flat ...
    assert all(a > b for a, b in zip(lrs[800:], lrs[801:]))  # ... then linear decay
    assert 0 < lrs[-1] <= 1 / 200 and max(lrs) == 1.0
    assert lrs[900] == pytest.approx(0.5)
    no_decay = TrainConfig(tokens=100, batch_size=1, lr=2.0, lr_warmup=0.0, lr_decay=0.0)
    assert [lr_at(s, no_decay) for s in (0, 50, 99)] == [2.0, 2.0, 2.0]


def test_geometric_median_beats_mean_with_outliers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    x[:20] += 100.0  # 10% far outliers
    med = geometric_median(x)

    def total(p):
        return float((x - p).norm(dim=1).sum())

    assert total(med) < 0.7 * total(x.mean(0))
    assert med.norm() < 1.0  # near the bulk at 0, not pulled to the outliers (the mean is at ~10)
    # it is a local minimum of the summed distance
    for d in torch.eye(5):
        assert total(med) <= total(med + 1e-2 * d) and total(med) <= total(med - 1e-2 * d)
    # on symmetric data it is the centre
    sym = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) + torch.tensor([3.0, -2.0])
    assert torch.allclose(geometric_median(sym), torch.tensor([3.0, -2.0]), atol=1e-5)


def test_saved_folder_reproduces_the_trained_sae_on_raw_inputs(tmp_path):
    src = ToySource(B, scale=7.0, **TOY)  # raw activations far from E||x||^2 = d: the scale is not 1
    cfg = _cfg(60, lr=1e-2)
    kept = _topk()
    res_mem, = train_saes([kept], src, cfg, progress=False)  # not saved: the scale stays unfolded
    first = next(src.batches())[0]
    assert res_mem["scaling_factor"] == pytest.approx(float((D / first.pow(2).sum(-1).mean()).sqrt()), rel=1e-5)
    assert res_mem["scaling_factor"] < 0.5
    assert kept.cfg.scaling_factor == res_mem["scaling_factor"]
    res, = train_saes([_topk()], src, cfg, out=tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "sae-0"
    assert res["folder"] == str(folder)
    assert {"cfg.json", "sae_weights.safetensors", "training.json"} <= {p.name for p in folder.iterdir()}
    training = json.loads((folder / "training.json").read_text())
    assert training["steps"] == 60 and training["config"]["batch_size"] == B and training["k"] == 4
    assert (tmp_path / "run" / "train_log.jsonl").read_text().count("\n") == 60 // 5
    loaded = load_sae(folder)
    assert loaded.cfg.scaling_factor == 1.0 and loaded.cfg.hook_name == "toy"
    toy = src.dictionary()
    toy._gen.manual_seed(12345)  # the same dictionary, samples not trained on
    x = 7.0 * toy.sample(4 * B)
    with torch.no_grad():
        assert torch.allclose(loaded(x), kept(x), rtol=1e-4, atol=1e-4)
        ev = 1 - float((x - loaded(x)).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert ev > 0.6  # it reconstructs raw activations, in raw units
    assert ev == pytest.approx(res["explained_variance"], abs=0.1)


# -- sources ------------------------------------------------------------------------------------------

# a layer-1 input depends on the context (layer 0's is just the token's embedding); its RMSNorm output is a
# deterministic function of it, so a (x, target) pair can be checked for coming from one token
HOOK_IN, HOOK_OUT = "blocks.1.hook_resid_pre", "blocks.1.ln1.hook_normalized"


def _rmsnorm(x, weight, eps):
    return x / x.pow(2).mean(-1, keepdim=True).add(eps).sqrt() * weight


def test_store_source_pairs_come_from_the_same_token(tmp_path):
    from shoestring.store import cache_activations

    lm = store_helpers.tiny_lm()
    T = store_helpers.T_CTX
    cache_activations(lm, store_helpers.random_batches(), out=tmp_path / "s", hooks=[HOOK_IN, HOOK_OUT],
                      target_tokens=T * 4 * 8, context_length=T, shard_tokens=T * 8, progress=False)
    norm = lm.model.model.layers[1].input_layernorm
    src = StoreSource(tmp_path / "s", HOOK_IN, batch_size=24, hook_out=HOOK_OUT, seed=5)
    assert src.d_in == 32 and src.d_out == 32
    batches = list(src.batches())
    assert len(batches) >= 10
    for x, y in batches:
        assert x.shape == (24, 32) and y.shape == (24, 32) and x.dtype == torch.float32
        expect = _rmsnorm(x, norm.weight.detach(), norm.variance_epsilon)
        assert torch.allclose(y, expect, rtol=2e-2, atol=2e-2)  # float16 store
        assert not torch.allclose(y.roll(1, 0), expect, rtol=0.2, atol=0.2)  # a misaligned pair would show
    # shuffled (not in store order), and skip resumes the same sequence
    first = torch.cat([x for x, _ in batches])
    in_order = torch.cat(list(src.store.batches(HOOK_IN, 24, shuffle=False)))
    assert not torch.equal(first[:24], in_order[:24])
    again = list(src.batches(skip=3))
    assert len(again) == len(batches) - 3
    for (x, y), (x2, y2) in zip(batches[3:], again):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    # an SAE source: target is the input
    plain = next(StoreSource(tmp_path / "s", HOOK_IN, batch_size=24).batches())
    assert plain[0] is plain[1]


def _corpus(n_docs=40, words=10):
    def make():
        for i in range(n_docs):
            ids = torch.randint(2, 100, (words,), generator=torch.Generator().manual_seed(i))
            yield Document(i, " ".join(f"w{int(t)}" for t in ids), f"doc{i}")

    return Corpus("tiny", make)


def test_stream_source_batches_and_resume():
    import shoestring

    lm = shoestring.LM(make_model("llama"), tiny_tokenizer(), name="llama", check=False)
    kw = dict(batch_size=10, hook_out=HOOK_OUT, context_length=8, buffer_contexts=4, forward_batch=2, seed=3)
    src = StreamSource(lm, _corpus(), HOOK_IN, **kw)
    assert src.d_in == 32 and src.d_out == 32 and src.buffer_tokens == 28  # 28 rows per buffer: batches straddle
    it = src.batches()
    full = [next(it) for _ in range(9)]
    norm = lm.model.model.layers[1].input_layernorm
    for x, y in full:
        assert x.shape == (10, 32) and y.shape == (10, 32)
        assert torch.allclose(y, _rmsnorm(x, norm.weight.detach(), norm.variance_epsilon), rtol=1e-4, atol=1e-5)
    # the first buffer (4 contexts, 28 rows after dropping BOS) is exactly those contexts' rows, shuffled
    from shoestring.data.pack import pack_batches

    ref = []
    for batch in pack_batches(_corpus(), lm.tokenizer, 8, 2):
        _, acts = lm.run_with_cache(batch.tokens, [HOOK_IN])
        ref.append(acts[HOOK_IN][:, 1:].reshape(-1, 32).float())
        if len(ref) == 2:
            break
    ref = torch.cat(ref)
    rows = torch.cat([x for x, _ in full])[:28]
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, ref.tolist()))
    assert not torch.equal(rows, ref)
    for skip in (1, 3, 6):  # within the first buffer, straddling into the second, and past two buffers
        it2 = StreamSource(lm, _corpus(), HOOK_IN, **kw).batches(skip=skip)
        for (x, y) in full[skip:]:
            x2, y2 = next(it2)
            assert torch.equal(x, x2) and torch.equal(y, y2), skip
    with pytest.raises(ShoestringError):
        StreamSource(lm, _corpus(), HOOK_IN, **{**kw, "buffer_contexts": 5})
