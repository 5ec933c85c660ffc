"""Evaluation on a tiny model: a perfect reconstruction costs nothing, a zero SAE is zero-ablation, the
reconstruction metrics, a transcoder's splice, and the density histogram."""

from __future__ import annotations

import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.sae import make_sae
from shoestring.sae.evaluate import density_histogram, evaluate_sae

from sae_helpers import identity_relu_sae, one_thread  # noqa: F401 (one_thread: an autouse fixture)
from tiny_models import make_lm, random_ids

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def lm():
    return make_lm("llama")


@pytest.fixture(scope="module")
def contexts():
    ids = random_ids(6, 10, seed=4)
    ids[:, 0] = 0  # BOS first, as packed contexts are
    return ids


def test_identity_sae_costs_nothing(lm, contexts):
    sae = identity_relu_sae(32, hook_name=HOOK)
    x = torch.randn(50, 32)
    assert torch.equal(sae(x), x)  # exactly the identity
    r = evaluate_sae(sae, lm, contexts, batch_size=4)
    assert r["ce_sae"] == pytest.approx(r["ce_clean"], abs=1e-6)
    assert r["kl_sae"] == pytest.approx(0.0, abs=1e-6)
    assert r["explained_variance"] == pytest.approx(1.0, abs=1e-6) and r["fvu"] == pytest.approx(0.0, abs=1e-6)
    assert r["mse"] == pytest.approx(0.0, abs=1e-10) and r["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert r["ce_recovered_zero"] == pytest.approx(1.0, abs=1e-5)
    assert r["ce_recovered_mean"] == pytest.approx(1.0, abs=1e-5)
    assert r["ce_increase"] == pytest.approx(0.0, abs=1e-6)
    # the ablations really change the model's predictions (a random model's CE need not get worse)
    assert r["ce_zero"] != r["ce_clean"] and r["kl_zero"] > 1e-4 and r["kl_mean"] > 1e-6
    # every token activates exactly one of (x_i, -x_i) per dimension unless x_i == 0
    assert r["l0"] == pytest.approx(32, abs=0.01)
    assert r["tokens"] == 6 * 9 and r["contexts"] == 6  # the BOS is not counted
    assert r["density"].shape == (64,) and float(r["density"].sum()) == pytest.approx(32, abs=0.01)
    assert r["dead_fraction"] == 0.0
    assert r["ce_clean_se"] > 0


def test_zero_sae_is_zero_ablation(lm, contexts):
    sae = make_sae("standard", 32, 64, hook_name=HOOK)
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()
    r = evaluate_sae(sae, lm, contexts, batch_size=4)
    assert r["ce_sae"] == pytest.approx(r["ce_zero"], abs=1e-6)
    assert r["kl_sae"] == pytest.approx(r["kl_zero"], abs=1e-6)
    assert r["ce_recovered_zero"] == pytest.approx(0.0, abs=1e-6)
    assert r["l0"] == 0 and r["dead_fraction"] == 1.0
    assert r["explained_variance"] <= 0.0  # predicting zero explains no variance


def test_mean_sae_is_mean_ablation_and_reconstruction_metrics(lm, contexts):
    # an SAE that outputs only b_dec = the mean activation is mean-ablation
    _, acts = lm.run_with_cache(contexts, [HOOK])
    mean = acts[HOOK][:, 1:].reshape(-1, 32).mean(0)
    sae = make_sae("standard", 32, 64, hook_name=HOOK)
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.b_enc.zero_()
        sae.b_dec.copy_(mean)
    r = evaluate_sae(sae, lm, contexts, batch_size=6, mean_act=mean)  # one batch: its mean is the mean
    assert r["ce_sae"] == pytest.approx(r["ce_mean"], abs=1e-5)
    assert r["ce_recovered_mean"] == pytest.approx(0.0, abs=1e-4)
    assert r["explained_variance"] == pytest.approx(0.0, abs=1e-5)  # the mean explains none of the variance


def test_noisy_sae_sits_between(lm, contexts):
    torch.manual_seed(0)
    sae = identity_relu_sae(32, hook_name=HOOK)
    with torch.no_grad():
        sae.W_dec.add_(0.1 * torch.randn_like(sae.W_dec))  # EV about 1 - 32 * 0.1^2
    r = evaluate_sae(sae, lm, contexts, batch_size=6)
    assert r["ce_sae"] != r["ce_clean"] and r["kl_sae"] > 0
    assert 0.3 < r["explained_variance"] < 0.99 and r["fvu"] == pytest.approx(1 - r["explained_variance"])
    assert r["ce_recovered_zero"] < 1


def test_transcoder_identity_splice(lm, contexts):
    """A transcoder from a hook to an identical later one, reconstructing exactly, changes nothing."""
    sae = identity_relu_sae(32, hook_name="blocks.0.hook_resid_post", hook_name_out="blocks.1.hook_resid_pre")
    assert sae.cfg.is_transcoder
    r = evaluate_sae(sae, lm, contexts, batch_size=3)
    assert r["ce_sae"] == pytest.approx(r["ce_clean"], abs=1e-6) and r["kl_sae"] == pytest.approx(0.0, abs=1e-6)
    assert r["explained_variance"] == pytest.approx(1.0, abs=1e-6)


def test_evaluate_bad_input(lm, contexts):
    sae = identity_relu_sae(32)
    with pytest.raises(ShoestringError) as e:
        evaluate_sae(sae, lm, contexts)
    assert "which hook" in str(e.value)
    with pytest.raises(ShoestringError) as e:
        evaluate_sae(sae, lm, contexts[:, :3], hook=HOOK)
    assert "T >= 4" in str(e.value)
    with pytest.raises(ShoestringError):
        evaluate_sae(sae, lm, contexts, hook="blocks.0.hook_resid_postt")


def test_density_histogram_counts_alive_latents():
    g = torch.Generator().manual_seed(0)
    density = 10 ** (-4 * torch.rand(200, generator=g, dtype=torch.float64))
    density[:37] = 0
    h = density_histogram(density, bins=10)
    assert h["dead"] == 37
    assert sum(h["counts"]) == 163
    assert len(h["edges"]) == 11 and h["edges"] == sorted(h["edges"])
    assert h["edges"][0] == pytest.approx(float(density[37:].log10().min()), abs=1e-4)
    assert h["edges"][-1] == pytest.approx(float(density[37:].log10().max()), abs=1e-4)
    one = density_histogram(torch.tensor([0.0, 0.1, 0.1]))
    assert sum(one["counts"]) == 2 and one["dead"] == 1
    none = density_histogram(torch.zeros(5))
    assert none == {"edges": [], "counts": [], "dead": 5}


def test_transcoder_splices_its_input_into_its_output_hook(lm, contexts):
    """An identity transcoder from resid_pre to resid_post of block 0 replaces the block's output by its
    input (skips the block, BOS aside): the CE must be that of doing so by hand."""
    import torch.nn.functional as F

    sae = identity_relu_sae(32, hook_name="blocks.0.hook_resid_pre", hook_name_out="blocks.0.hook_resid_post")
    r = evaluate_sae(sae, lm, contexts, batch_size=6)
    with lm.capture(["blocks.0.hook_resid_pre"]) as cap:
        lm.forward(contexts)
    inp = cap["blocks.0.hook_resid_pre"]

    def skip_block(act):
        out = act.clone()
        out[:, 1:] = inp[:, 1:].to(act.dtype)
        return out

    with lm.edit({"blocks.0.hook_resid_post": skip_block}):
        logits = lm.forward(contexts)
    logp = F.log_softmax(logits[:, 1:-1].float(), -1)
    ce = float(-logp.gather(-1, contexts[:, 2:, None]).mean())
    assert r["ce_sae"] == pytest.approx(ce, abs=1e-5)
    assert abs(r["ce_sae"] - r["ce_clean"]) > 1e-4  # skipping the block is not free
    # reconstruction metrics compare the transcoder's output with the output hook
    assert r["explained_variance"] < 0.999
