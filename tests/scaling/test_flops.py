"""Analytic FLOPs agree with FLOPs counted by torch on the model itself (explicit attention: the counter sees the
full T x T square, ours counts the causal (T + 1) / 2 keys a query really attends)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from shoestring.scaling.config import GPTConfig
from shoestring.scaling.flops import active_params, forward_flops, mean_keys, train_flops_per_token
from shoestring.scaling.model import GPT


V, T, B = 64, 16, 2
SHAPE = dict(vocab_size=V, context=T, n_layer=2, n_head=4, d_model=32, attention="explicit")

CASES = {
    "gelu": dict(),
    "swiglu": dict(mlp="swiglu"),
    "relu2-untied": dict(mlp="relu2", tie_embeddings=False),
    "mqa": dict(n_kv_head=1),
    "gqa": dict(n_kv_head=2),
    "moe-top1": dict(n_experts=4, top_k=1),
    "moe-top2": dict(n_experts=4, top_k=2),
    "rope+qk-norm": dict(positions="rope", qk_norm=True, norm="rmsnorm"),
    "window": dict(window=4, positions="alibi"),
    "mlp_hidden": dict(mlp_hidden=40, bias=True),
}


def counted(model: GPT, ids: torch.Tensor, backward: bool = False) -> int:
    with FlopCounterMode(display=False) as fc:
        if backward:
            model.training_loss(ids, ids).backward()
        else:
            model(ids)
    return fc.get_total_flops()


def full_square(cfg: GPTConfig, T: int) -> float:
    """Forward FLOPs per token as explicit attention computes them: the whole T x T score matrix."""
    f = forward_flops(cfg, T)
    return f["projections"] + f["mlp"] + f["output"] + cfg.n_layer * 4 * cfg.n_head * cfg.head_dim * T


@pytest.mark.parametrize("kw", CASES.values(), ids=CASES.keys())
def test_forward_flops_match_torch_flop_counter(kw):
    cfg = GPTConfig(**{**SHAPE, **kw}).check()
    torch.manual_seed(0)
    model = GPT(cfg)
    ids = torch.randint(0, V, (B, T))
    assert counted(model, ids) == pytest.approx(full_square(cfg, T) * B * T, rel=1e-9)
    # a shorter sequence: the attention square shrinks with T, the rest is per token
    assert counted(model, ids[:, :8]) == pytest.approx(full_square(cfg, 8) * B * 8, rel=1e-9)


@pytest.mark.parametrize("kw", [CASES["gelu"], CASES["moe-top2"], CASES["mqa"]], ids=["gelu", "moe", "mqa"])
def test_backward_costs_twice_the_forward(kw):
    cfg = GPTConfig(**{**SHAPE, **kw}).check()
    torch.manual_seed(0)
    model = GPT(cfg)
    ids = torch.randint(0, V, (B, T))
    assert counted(model, ids, backward=True) == pytest.approx(3 * counted(model, ids), rel=1e-9)
    assert train_flops_per_token(cfg) == pytest.approx(3 * forward_flops(cfg)["total"])


def test_parts_add_up_and_default_length_is_the_context():
    cfg = GPTConfig(**SHAPE).check()
    f = forward_flops(cfg)
    assert f["total"] == pytest.approx(f["projections"] + f["attention"] + f["mlp"] + f["output"])
    assert f == forward_flops(cfg, T)
    assert forward_flops(cfg, 8)["attention"] < f["attention"]
    d, L = cfg.d_model, cfg.n_layer
    assert f["projections"] == L * 8 * d * d  # q, k, v, o: 4 d x d matrices, 2 FLOPs per multiply-add
    assert f["mlp"] == L * 2 * 2 * d * 4 * d
    assert f["output"] == 2 * d * V
    assert f["attention"] == pytest.approx(L * 4 * d * (T + 1) / 2)


def test_attention_counts_the_causal_mean_keys():
    cfg = GPTConfig(**SHAPE).check()
    for kw in (dict(), dict(window=4), dict(window=1), dict(n_kv_head=1)):
        c = replace(cfg, **kw)
        want = c.n_layer * 4 * c.n_head * c.head_dim * mean_keys(T, c.window)
        assert forward_flops(c)["attention"] == pytest.approx(want)
    # the fused/explicit choice changes wall-clock, not model FLOPs
    assert forward_flops(replace(cfg, attention="sdpa")) == forward_flops(cfg)


@pytest.mark.parametrize("n", [1, 2, 7, 16, 128])
def test_mean_keys_causal_is_half_the_square_plus_the_diagonal(n):
    assert mean_keys(n, None) == pytest.approx((n + 1) / 2)
    assert mean_keys(n, n) == pytest.approx((n + 1) / 2)  # a window as long as the sequence masks nothing more
    assert mean_keys(n, 1) == 1.0


def test_mean_keys_with_a_window_counts_the_visible_keys():
    # T=8, w=3: queries see 1, 2, 3, 3, 3, 3, 3, 3 keys
    assert mean_keys(8, 3) == pytest.approx(21 / 8)
    # brute force against the mask itself
    for n, w in ((16, 4), (10, 7), (5, 9)):
        i = torch.arange(n)
        dist = i[:, None] - i[None, :]
        visible = ((dist >= 0) & (dist < w)).sum().item()
        assert mean_keys(n, w) == pytest.approx(visible / n)
    assert mean_keys(16, 4) < mean_keys(16, None)


def test_moe_flops_scale_with_top_k_not_with_the_number_of_experts():
    base = GPTConfig(**{**SHAPE, "n_experts": 4, "top_k": 1}).check()
    dense = GPTConfig(**SHAPE).check()
    per_expert = forward_flops(dense)["mlp"] / dense.n_layer
    router = 2 * base.d_model * base.n_experts
    f1, f2, f3 = (forward_flops(replace(base, top_k=k))["mlp"] for k in (1, 2, 3))
    assert f2 - f1 == pytest.approx(base.n_layer * per_expert)
    assert f3 - f2 == pytest.approx(base.n_layer * per_expert)
    assert f1 == pytest.approx(base.n_layer * (per_expert + router))
    more = forward_flops(replace(base, n_experts=8))["mlp"]
    assert more - f1 == pytest.approx(base.n_layer * 2 * base.d_model * 4)  # only the router grows


def test_active_params_are_the_matmul_weights_a_token_passes_through():
    # baseline without norms or biases: non-embedding parameters are exactly the block matrices
    cfg = GPTConfig(**{**SHAPE, "norm": "none"}).check()
    model = GPT(cfg)
    assert active_params(cfg) == model.n_params(embedding=False) + cfg.d_model * V  # + the output layer
    # a mixture of experts: only top_k of the experts are active
    moe = replace(cfg, n_experts=4, top_k=1)
    m = GPT(moe)
    expert = sum(p.numel() for p in m.blocks[0].mlp.experts[0].parameters())
    assert active_params(moe) == m.n_params(embedding=False) - moe.n_layer * 3 * expert + moe.d_model * V
    assert active_params(moe) < m.n_params()
