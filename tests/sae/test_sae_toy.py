"""Ground truth: a TopK SAE trained on a known sparse dictionary in superposition recovers it; an untrained
one does not (so the recovery test can fail)."""

from __future__ import annotations

import pytest
import torch

from shoestring.sae import make_sae
from shoestring.sae.toy import ToyDictionary, mean_max_cosine
from shoestring.sae.train import TrainConfig, train_saes

from sae_helpers import ToySource, one_thread  # noqa: F401 (one_thread: an autouse fixture)

D, N_FEATURES, P, D_SAE, K, B, STEPS = 32, 128, 0.02, 256, 4, 256, 800


def test_toy_dictionary_samples():
    toy = ToyDictionary(d=D, n_features=N_FEATURES, p=P, seed=2)
    assert toy.features.shape == (N_FEATURES, D)
    assert torch.allclose(toy.features.norm(dim=1), torch.ones(N_FEATURES))
    x = toy.sample(4000)
    assert x.shape == (4000, D)
    # each row is a non-negative combination of about n_features * p features: least squares finds it
    coef = torch.linalg.lstsq(toy.features.T, x[:5].T).solution  # [n_features, 5], underdetermined
    assert torch.allclose(coef.T @ toy.features, x[:5], atol=1e-4)
    # E||x||^2 = n p E[m^2] + cross terms (zero mean for random unit directions)
    assert float(x.pow(2).sum(-1).mean()) == pytest.approx(N_FEATURES * P * (13 / 12), rel=0.15)
    # the same seed gives the same dictionary and the same samples
    again = ToyDictionary(d=D, n_features=N_FEATURES, p=P, seed=2)
    assert torch.equal(again.features, toy.features) and torch.equal(again.sample(4000), x)
    assert not torch.equal(ToyDictionary(d=D, n_features=N_FEATURES, p=P, seed=3).features, toy.features)


def test_mean_max_cosine():
    f = torch.eye(4)
    assert mean_max_cosine(f, torch.cat([f * 3, -f])) == pytest.approx(1.0)  # scale does not matter
    assert mean_max_cosine(f, -f) == pytest.approx(0.0)  # sign does
    assert mean_max_cosine(f, f[:2]) == pytest.approx(0.5)  # missing features count


@pytest.mark.parametrize("toy_seed, sae_seed", [(0, 0), (1, 1), (0, 1)])
def test_untrained_sae_does_not_recover_the_dictionary(toy_seed, sae_seed):
    """Also when the toy and the SAE use the same seed (both default to 0): the dictionary must not be the
    SAE's own random initialisation."""
    toy = ToyDictionary(d=D, n_features=N_FEATURES, p=P, seed=toy_seed)
    sae = make_sae("topk", D, D_SAE, k=K, seed=sae_seed)
    assert mean_max_cosine(toy.features, sae.W_dec.detach()) < 0.7


def test_topk_sae_recovers_the_toy_dictionary():
    src = ToySource(B, d=D, n_features=N_FEATURES, p=P, seed=0)
    truth = src.dictionary().features
    sae = make_sae("topk", D, D_SAE, k=K, seed=0)
    before = mean_max_cosine(truth, sae.W_dec.detach())
    res, = train_saes([sae], src, TrainConfig(tokens=STEPS * B, batch_size=B, lr=4e-3), progress=False)
    after = mean_max_cosine(truth, sae.W_dec.detach())
    assert before < 0.7
    assert after > 0.9
    best = (truth @ (sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)).detach().T).max(dim=1).values
    assert float((best > 0.9).double().mean()) > 0.85  # most features individually found, not a few perfectly
    assert res["explained_variance"] > 0.8
    assert res["l0"] <= K
