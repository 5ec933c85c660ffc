"""SAE variants: the TopK sparse training path against a dense reference, each activation's behaviour,
the JumpReLU straight-through estimator, BatchTopK's inference threshold, and folding the input scale."""

from __future__ import annotations

import math

import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.sae import ARCHITECTURES, BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE, make_sae, sae_class

from sae_helpers import randomise, one_thread  # noqa: F401 (one_thread: an autouse fixture)

D_IN, D_SAE, K, B = 16, 48, 5, 12


# -- TopK: sparse autograd path == dense reference ----------------------------------------------------

def dense_topk_loss(W_enc, b_enc, W_dec, b_dec, x, target, k, apply_b_dec, dead=None, aux_k=None, coef=1 / 32):
    """The TopK + AuxK loss written the obvious, dense way (the definition the sparse path must match)."""
    x_in = x - b_dec if apply_b_dec else x
    pre = x_in @ W_enc + b_enc
    vals, idx = pre.topk(k, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    x_hat = z @ W_dec + b_dec
    residual = target - x_hat
    sse = residual.pow(2).sum()
    loss = sse / x.shape[0]
    if dead is not None and bool(dead.any()):
        k_aux = min(aux_k, int(dead.sum()))
        avals, aidx = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
        aux_z = torch.zeros_like(pre).scatter(-1, aidx, avals.relu())
        e = residual.detach()
        aux = (e - aux_z @ W_dec).pow(2).sum(-1).mean() / e.pow(2).sum(-1).mean()
        loss = loss + coef * aux * sse.detach() / x.shape[0]
    return loss, z, x_hat


@pytest.mark.parametrize("apply_b_dec", [True, False], ids=["b_dec_in", "no_b_dec_in"])
@pytest.mark.parametrize("with_dead", [False, True], ids=["no_aux", "auxk"])
def test_topk_sparse_gradients_equal_dense_reference(apply_b_dec, with_dead):
    torch.manual_seed(0)
    sae = make_sae("topk", D_IN, D_SAE, k=K, aux_k=7, aux_coefficient=0.25)
    sae.cfg.apply_b_dec_to_input = apply_b_dec
    sae = randomise(sae.double(), seed=1, bias=0.3).train()
    with torch.no_grad():
        sae.W_enc.add_(0.2 * torch.randn_like(sae.W_enc))  # encoder no longer the decoder's transpose
    x = torch.randn(B, D_IN, dtype=torch.float64)
    target = x if apply_b_dec else torch.randn(B, D_IN, dtype=torch.float64)
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    if with_dead:
        dead[::3] = True  # 16 dead latents, more than aux_k
    loss, info = sae.train_forward(x, target, {"dead": dead})
    loss.backward()
    got = {n: getattr(sae, n).grad.clone() for n in ("W_enc", "b_enc", "W_dec", "b_dec")}

    params = {n: getattr(sae, n).detach().clone().requires_grad_(True) for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    ref_loss, z, x_hat = dense_topk_loss(params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"], x, target,
                                         K, apply_b_dec, dead if with_dead else None, aux_k=7, coef=0.25)
    ref_loss.backward()
    assert ("aux" in info) == with_dead
    assert torch.allclose(loss.detach(), ref_loss.detach(), rtol=1e-12, atol=1e-12)
    for n, p in params.items():
        assert got[n].abs().max() > 0, n
        assert torch.allclose(got[n], p.grad, rtol=1e-10, atol=1e-12), (n, (got[n] - p.grad).abs().max())
    # forward facts: the summed error, L0, and the same values as the inference path sae(x)
    assert info["sse"] == pytest.approx(float((target - x_hat).detach().pow(2).sum()), rel=1e-12)
    assert info["l0"] == float((z > 0).sum(-1).double().mean())
    assert torch.equal(info["counts"], (z > 0).sum(0))
    with torch.no_grad():
        assert torch.allclose(sae(x), x_hat.detach(), rtol=1e-12, atol=1e-12)
        assert torch.allclose(sae.encode(x), z.detach(), rtol=1e-12, atol=1e-12)


def test_topk_l0_equals_k_when_preacts_positive():
    sae = make_sae("topk", D_IN, D_SAE, k=K)
    with torch.no_grad():
        sae.b_enc.fill_(50.0)  # every pre-activation positive: exactly k survive the ReLU
    x = torch.randn(B, D_IN)
    _, info = sae.train().train_forward(x, x, {})
    assert info["l0"] == K
    assert int(info["counts"].sum()) == B * K
    z = sae.encode(x)
    assert ((z != 0).sum(-1) == K).all()


# -- each variant ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["standard", "topk", "batchtopk", "jumprelu"])
def test_encode_decode_shapes(arch):
    sae = make_sae(arch, D_IN, D_SAE, k=K if "topk" in arch else None)
    x = torch.randn(3, 4, D_IN)  # extra leading dims work too
    z = sae.eval().encode(x)
    assert z.shape == (3, 4, D_SAE)
    assert sae.decode(z).shape == (3, 4, D_IN)
    assert torch.allclose(sae.error(x), x - sae(x))


def test_topk_at_most_k_per_row():
    sae = randomise(make_sae("topk", D_IN, D_SAE, k=K), bias=1.0)
    x = torch.randn(200, D_IN)
    z = sae.encode(x)
    nz = (z != 0).sum(-1)
    assert (nz <= K).all() and (nz == K).any()
    assert (z >= 0).all()
    pre = sae.pre_acts(x)
    kth = pre.topk(K, dim=-1).values[:, -1:]
    assert torch.equal(z, torch.where((pre >= kth) & (pre > 0), pre, torch.zeros_like(pre)))


def test_relu_is_nonnegative_relu_of_preacts():
    sae = randomise(make_sae("standard", D_IN, D_SAE), bias=0.5)
    x = torch.randn(50, D_IN)
    z = sae.encode(x)
    assert (z >= 0).all() and (z > 0).any() and (z == 0).any()
    assert torch.equal(z, sae.pre_acts(x).relu())
    # the penalty is the decoder-norm-weighted L1, scaled by the warm-up
    with torch.no_grad():
        sae.W_dec.mul_(2.0)
    pen, m = sae.penalty(z, None, x, None, {"l1_scale": 0.5})
    assert float(pen) == pytest.approx(5.0 * 0.5 * float((z * 2.0).sum(-1).mean()), rel=1e-5)


def test_batchtopk_training_keeps_batch_times_k():
    sae = randomise(make_sae("batchtopk", D_IN, D_SAE, k=K), bias=1.0).train()
    sae.threshold_estimate.fill_(-1.0)  # as freshly made: no estimate yet
    x = torch.randn(64, D_IN)
    pre = sae.pre_acts(x)
    z = sae.activate(pre)  # training mode, grad enabled: the batch-level top-k
    per_row = (z > 0).sum(-1)
    assert int(per_row.sum()) == 64 * K  # batch-average L0 is exactly k
    assert per_row.min() < K < per_row.max()  # ... but it varies from token to token
    kept = z[z > 0]
    dropped = pre.relu()[(z == 0) & (pre > 0)]
    assert kept.min() >= dropped.max()  # the largest batch*k activations
    # the threshold estimate starts at the smallest kept activation, then is a running average
    assert float(sae.threshold_estimate) == pytest.approx(float(kept.min()), rel=1e-6)
    first = float(sae.threshold_estimate)
    x2 = 3 * torch.randn(64, D_IN)
    z2 = sae.activate(sae.pre_acts(x2))
    low2 = float(z2[z2 > 0].min())
    assert float(sae.threshold_estimate) == pytest.approx(0.99 * first + 0.01 * low2, rel=1e-5)


def test_batchtopk_eval_uses_threshold_estimate():
    sae = randomise(make_sae("batchtopk", D_IN, D_SAE, k=K), bias=1.0)
    with torch.no_grad():
        sae.threshold_estimate.fill_(0.7)
    x = torch.randn(40, D_IN)
    pre = sae.pre_acts(x)
    expect = torch.where(pre > 0.7, pre, torch.zeros_like(pre))
    sae.eval()
    z = sae.encode(x)
    assert torch.equal(z, expect)
    # independent of the batch (unlike training mode) ...
    small = sae.encode(x[:7])
    assert torch.equal(small > 0, expect[:7] > 0) and torch.allclose(small, expect[:7], atol=1e-6)
    # ... and also under no_grad in training mode (no batch top-k without a graph)
    with torch.no_grad():
        assert torch.equal(sae.train().encode(x), expect)
    # the training path does something else on the same batch
    assert not torch.equal(sae.train().encode(x), expect)


def test_jumprelu_zero_below_threshold():
    sae = make_sae("jumprelu", D_IN, D_SAE)
    theta = 0.05 + torch.rand(D_SAE)
    with torch.no_grad():
        sae.log_threshold.copy_(theta.log())
        sae.b_enc.fill_(0.5)
    x = torch.randn(100, D_IN)
    pre = sae.pre_acts(x)
    z = sae.encode(x)
    th = sae.threshold.detach()
    assert torch.equal(z, torch.where(pre > th, pre, torch.zeros_like(pre)))
    assert ((z == 0) | (z > th)).all()  # nothing between 0 and theta: the jump
    assert (z > 0).any() and ((pre > 0) & (pre <= th)).any()  # some positive pre-acts were cut


def test_jumprelu_ste_threshold_gradient_only_within_bandwidth():
    eps, theta = 0.01, 0.5
    sae = make_sae("jumprelu", 4, 3, bandwidth=eps)
    with torch.no_grad():
        sae.log_threshold.fill_(math.log(theta))
    # latent 0: pre just inside the window (|pre - theta| < eps/2) on both sides; latent 1: just outside;
    # latent 2: far away
    pre = torch.tensor([[theta + 0.3 * eps, theta + 0.6 * eps, theta + 10 * eps],
                        [theta - 0.3 * eps, theta - 0.6 * eps, theta - 10 * eps]], requires_grad=True)
    z = sae.activate(pre)
    assert torch.equal(z.detach(), torch.stack([pre[0].detach(), torch.zeros(3)]))
    z.sum().backward()
    g = sae.log_threshold.grad
    # d z / d theta = -(theta/eps) K((pre-theta)/eps), two rows inside the window; chain rule through exp
    assert g[0].item() == pytest.approx(2 * -(theta / eps) * theta, rel=1e-4)
    assert g[1].item() == 0.0 and g[2].item() == 0.0
    # the pre-activation gets the plain gradient H(pre - theta)
    assert torch.equal(pre.grad, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))

    # the L0 penalty's step function: d H / d theta = -(1/eps) K(...)
    sae.log_threshold.grad = None
    sae.cfg.extra["l0_coefficient"] = 1.0
    pen, _ = sae.penalty(None, pre.detach(), None, None, {"l1_scale": 1.0})
    assert float(pen) == pytest.approx(1.5)  # 3 active entries over 2 rows
    pen.backward()
    g = sae.log_threshold.grad
    assert g[0].item() == pytest.approx(-(2 / eps) / 2 * theta, rel=1e-4)
    assert g[1].item() == 0.0 and g[2].item() == 0.0


# -- scaling ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["standard", "topk", "batchtopk", "jumprelu"])
@pytest.mark.parametrize("transcoder", [False, True], ids=["sae", "transcoder"])
def test_fold_scaling_keeps_outputs_on_raw_inputs(arch, transcoder):
    sae = make_sae(arch, D_IN, D_SAE, k=K if "topk" in arch else None, hook_name="a",
                   hook_name_out="b" if transcoder else None, d_out=20 if transcoder else None)
    sae = randomise(sae, bias=0.3).eval()
    sae.cfg.scaling_factor = 0.37
    x = 2.7 * torch.randn(30, D_IN)
    before_z, before = sae.encode(x), sae(x)
    # the scaling really is applied: the same weights without it give other outputs
    sae.cfg.scaling_factor = 1.0
    assert not torch.allclose(sae(x), before, atol=1e-3)
    sae.cfg.scaling_factor = 0.37
    sae.fold_scaling()
    assert sae.cfg.scaling_factor == 1.0
    assert torch.allclose(sae.encode(x), before_z, rtol=1e-5, atol=1e-5)
    assert torch.allclose(sae(x), before, rtol=1e-5, atol=1e-5)


# -- config errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    (dict(architecture="topk", d_in=8, d_sae=16, k=None), "needs k"),
    (dict(architecture="topk", d_in=8, d_sae=16, k=17), "larger than the SAE width"),
    (dict(architecture="batchtopk", d_in=8, d_sae=16, k=0), "needs k"),
    (dict(architecture="standard", d_in=0, d_sae=16), "must be positive"),
    (dict(architecture="standard", d_in=8, d_sae=16, dtype="float64"), "unknown SAE dtype"),
    (dict(architecture="gatd", d_in=8, d_sae=16), "unknown SAE architecture 'gatd'"),
])
def test_bad_configs_raise_one_line(kwargs, words):
    with pytest.raises(ShoestringError) as e:
        make_sae(**kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_architecture_registry_and_aliases():
    assert set(ARCHITECTURES) == {"standard", "topk", "batchtopk", "jumprelu"}
    assert sae_class("relu") is ReLUSAE and sae_class("l1") is ReLUSAE
    assert sae_class("topk") is TopKSAE and sae_class("batchtopk") is BatchTopKSAE
    assert sae_class("jumprelu") is JumpReLUSAE
