"""The small GPT: every preset trains a step, explicit and fused attention agree, masks are causal (and windowed),
parameter sharing / counting, the mixture of experts, and impossible toggle combinations fail with one clear line."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.scaling.config import PRESETS, GPTConfig, preset
from shoestring.scaling.model import GPT, MoE, alibi_slopes, apply_rope, rope_tables, sinusoidal


V, T = 64, 16
SHAPE = dict(vocab_size=V, context=T, n_layer=2, n_head=4, d_model=32)


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**{**SHAPE, **kw}).check()


def sharpen(model: GPT, seed: int = 0, std: float = 0.3) -> GPT:
    """Larger random weights, so attention is far from uniform and any masking/ordering mistake shows up."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def ids(B: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_trains_one_step(name):
    cfg = preset(name, vocab_size=V, context=T, n_layer=2, n_head=4, d_model=32)
    for key, value in PRESETS[name].items():  # the preset's toggles took effect
        if key != "window":
            assert getattr(cfg, key) == value
    torch.manual_seed(0)
    model = GPT(cfg)
    x = ids()
    logits, ce = model(x, x.roll(-1, dims=1))
    assert logits.shape == (2, T, V)
    assert torch.isfinite(ce) and ce.item() == pytest.approx(math.log(V), abs=0.5)  # near-uniform at init
    loss = model.training_loss(x, x.roll(-1, dims=1))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert model.embed.weight.grad is not None and model.embed.weight.grad.abs().sum() > 0


def test_sliding_window_preset_is_a_quarter_of_the_context():
    assert preset("sliding-window", **{**SHAPE, "context": 16}).window == 4
    assert preset("sliding-window", **{**SHAPE, "context": 8}).window == 2
    assert preset("sliding-window", **{**SHAPE, "context": 2}).window == 1  # never 0
    assert preset("baseline", **SHAPE).window is None


def test_unknown_preset_is_one_clear_error():
    with pytest.raises(ShoestringError, match="unknown preset 'nope'"):
        preset("nope")


def test_sequence_longer_than_context_is_refused():
    model = GPT(tiny())
    with pytest.raises(ValueError, match="longer than the context"):
        model(torch.zeros(1, T + 1, dtype=torch.long))


# ---------------------------------------------------------------- explicit == fused attention

EQUIV = {
    "causal": dict(),
    "alibi": dict(positions="alibi"),
    "alibi-6-heads": dict(positions="alibi", n_head=6, d_model=48),  # slopes for a non-power-of-2 head count
    "window": dict(window=5),
    "alibi+window": dict(positions="alibi", window=3),
    "gqa": dict(n_kv_head=2),
    "mqa": dict(n_kv_head=1),
    "rope+qk-norm": dict(positions="rope", qk_norm=True, norm="rmsnorm"),
    "sinusoidal+post-norm": dict(positions="sinusoidal", norm_position="post"),
}


@pytest.mark.parametrize("kw", EQUIV.values(), ids=EQUIV.keys())
def test_explicit_and_fused_attention_give_the_same_logits(kw):
    torch.manual_seed(0)
    explicit = sharpen(GPT(tiny(attention="explicit", **kw)))
    fused = GPT(tiny(attention="sdpa", **kw)).eval()
    fused.load_state_dict(explicit.state_dict())
    x = ids()
    with torch.no_grad():
        a, _ = explicit(x)
        b, _ = fused(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and a shorter sequence (the masks are built for T, not the context)
    with torch.no_grad():
        torch.testing.assert_close(explicit(x[:, :7])[0], fused(x[:, :7])[0], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- causality and the window's receptive field


def changed_positions(model: GPT, t: int, seed: int = 0) -> torch.Tensor:
    """Per position: the largest |logit change| when the token at position ``t`` is replaced."""
    x = ids(1, seed)
    y = x.clone()
    y[0, t] = (y[0, t] + 1 + V // 2) % V
    with torch.no_grad():
        return (model(x)[0] - model(y)[0]).abs().amax(-1)[0]


@pytest.mark.parametrize("attention", ["explicit", "sdpa"])
@pytest.mark.parametrize("kw", [dict(positions="learned"), dict(positions="sinusoidal"), dict(positions="rope"),
                                dict(positions="alibi"), dict(positions="none"), dict(window=4),
                                dict(positions="alibi", window=4), dict(n_kv_head=1, positions="rope")],
                         ids=["learned", "sinusoidal", "rope", "alibi", "none", "window", "alibi+window", "mqa+rope"])
def test_a_token_never_changes_the_logits_before_it(kw, attention):
    torch.manual_seed(1)
    model = sharpen(GPT(tiny(attention=attention, **kw)), seed=1)
    for t in (0, 5, T - 1):
        diff = changed_positions(model, t)
        assert torch.all(diff[:t] <= 1e-6), f"position < {t} saw token {t}: {diff[:t]}"
        assert diff[t] > 1e-3  # the token itself does matter at its own position


@pytest.mark.parametrize("attention", ["explicit", "sdpa"])
@pytest.mark.parametrize("n_layer", [1, 2])
@pytest.mark.parametrize("w", [1, 4])
def test_sliding_window_receptive_field_is_n_layer_times_w_minus_1(w, n_layer, attention):
    torch.manual_seed(2)
    model = sharpen(GPT(tiny(attention=attention, window=w, n_layer=n_layer)), seed=2)
    s = 3
    reach = s + n_layer * (w - 1)  # the last query a token at s can still influence
    diff = changed_positions(model, s)
    assert torch.all(diff[:s] <= 1e-6)
    assert torch.all(diff[s: reach + 1] > 1e-4), diff
    assert torch.all(diff[reach + 1:] <= 1e-6), f"window {w}, {n_layer} layer(s): past {reach} changed: {diff}"


def test_without_a_window_a_token_reaches_every_later_position():
    torch.manual_seed(3)
    model = sharpen(GPT(tiny(n_layer=1, attention="explicit")), seed=3)
    assert torch.all(changed_positions(model, 2)[2:] > 1e-4)


# ---------------------------------------------------------------- positions helpers


def test_alibi_slopes_are_geometric_for_powers_of_two_and_interleaved_otherwise():
    assert torch.allclose(alibi_slopes(4), torch.tensor([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]))
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    six = alibi_slopes(6)  # the 4 of n=4, then the odd ones of n=8 (2^-0.5, 2^-1.5)
    assert len(six) == 6 and torch.allclose(six, torch.tensor([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]))
    assert len(set(six.tolist())) == 6


def test_rope_is_a_rotation_that_makes_scores_depend_on_relative_position_only():
    D = 8
    cos, sin = rope_tables(12, D, 10000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, D, generator=g), torch.randn(1, 1, 1, D, generator=g)

    def at(x, pos):
        return apply_rope(x, cos[pos: pos + 1], sin[pos: pos + 1])

    assert torch.allclose(at(q, 7).norm(), q.norm(), atol=1e-5)  # norm-preserving
    s1 = (at(q, 5) * at(k, 2)).sum()
    s2 = (at(q, 9) * at(k, 6)).sum()
    s3 = (at(q, 9) * at(k, 2)).sum()
    assert s1.item() == pytest.approx(s2.item(), abs=1e-5)
    assert abs(s1.item() - s3.item()) > 1e-3
    assert torch.equal(at(q, 0), q)  # position 0: no rotation


def test_sinusoidal_table_matches_the_formula():
    table = sinusoidal(10, 8)
    pos, i = 7, 2  # dims 2i, 2i+1
    freq = 10000.0 ** (-2 * i / 8)
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos * freq), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos * freq), abs=1e-6)
    assert torch.all(table[0, 0::2] == 0) and torch.all(table[0, 1::2] == 1)


# ---------------------------------------------------------------- parameters, sharing


def test_multi_query_has_fewer_parameters_only_in_the_kv_projection():
    cfg = tiny()
    mha, gqa, mqa = GPT(cfg), GPT(replace(cfg, n_kv_head=2)), GPT(replace(cfg, n_kv_head=1))
    hd = cfg.head_dim
    assert mqa.blocks[0].attn.kv.weight.shape == (2 * 1 * hd, cfg.d_model)
    assert mha.blocks[0].attn.kv.weight.shape == (2 * cfg.n_head * hd, cfg.d_model)
    assert mqa.blocks[0].attn.q.weight.shape == mha.blocks[0].attn.q.weight.shape
    assert mqa.n_params() < gqa.n_params() < mha.n_params()
    assert mha.n_params() - mqa.n_params() == cfg.n_layer * 2 * (cfg.n_head - 1) * hd * cfg.d_model


@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_grouped_query_equals_multi_head_with_copied_key_value_heads(n_kv_head):
    """Query head h reads key-value head h // (n_head / n_kv_head): consecutive query heads share one."""
    torch.manual_seed(4)
    gqa = sharpen(GPT(tiny(n_kv_head=n_kv_head, attention="explicit")), seed=4)
    mha = GPT(tiny(attention="explicit")).eval()
    state = gqa.state_dict()
    H, hd, d = SHAPE["n_head"], SHAPE["d_model"] // SHAPE["n_head"], SHAPE["d_model"]
    for i in range(SHAPE["n_layer"]):
        w = state[f"blocks.{i}.attn.kv.weight"].view(2, n_kv_head, hd, d)
        state[f"blocks.{i}.attn.kv.weight"] = w.repeat_interleave(H // n_kv_head, dim=1).reshape(2 * H * hd, d)
    mha.load_state_dict(state)
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(gqa(x)[0], mha(x)[0], atol=1e-5, rtol=1e-5)


def test_tied_embeddings_share_the_tensor_and_untied_do_not():
    tied, untied = GPT(tiny(tie_embeddings=True)), GPT(tiny(tie_embeddings=False))
    assert tied.head.weight is tied.embed.weight
    assert untied.head.weight is not untied.embed.weight
    assert untied.head.weight.data_ptr() != untied.embed.weight.data_ptr()
    assert untied.n_params() - tied.n_params() == V * SHAPE["d_model"]
    # a step on the tied model moves the output layer with the embedding
    x = ids()
    opt = torch.optim.SGD(tied.parameters(), lr=0.1)
    tied(x, x)[1].backward()
    opt.step()
    assert torch.equal(tied.head.weight, tied.embed.weight)


def test_n_params_without_embeddings_leaves_out_token_and_position_tables():
    model = GPT(tiny(positions="learned", tie_embeddings=False))
    d = SHAPE["d_model"]
    assert model.n_params() - model.n_params(embedding=False) == V * d + T * d
    rope = GPT(tiny(positions="rope", tie_embeddings=False))
    assert rope.n_params() - rope.n_params(embedding=False) == V * d


def test_swiglu_default_hidden_keeps_the_mlp_parameter_count_close():
    gelu, swiglu = tiny(mlp="gelu"), tiny(mlp="swiglu")
    assert swiglu.hidden % 8 == 0
    assert 3 * swiglu.hidden == pytest.approx(2 * gelu.hidden, rel=0.1)


# ---------------------------------------------------------------- mixture of experts


def test_moe_aux_loss_is_positive_and_added_to_the_training_loss():
    torch.manual_seed(0)
    cfg = tiny(n_experts=4, top_k=2, aux_loss_coef=0.05)
    model = GPT(cfg)
    x = ids()
    _, ce = model(x, x)
    aux = model.aux_loss
    assert aux.item() > 0
    total = model.training_loss(x, x)
    assert total.item() > ce.item()
    assert total.item() == pytest.approx(ce.item() + 0.05 * model.aux_loss.item(), rel=1e-6)
    total.backward()
    assert model.blocks[0].mlp.router.weight.grad.abs().sum() > 0  # the balancing loss trains the router
    dense = GPT(tiny())
    assert dense.training_loss(x, x).item() == pytest.approx(dense(x, x)[1].item())


def test_moe_aux_loss_is_one_for_perfectly_balanced_routing():
    cfg = tiny(n_experts=4, top_k=2)
    moe = MoE(cfg)
    with torch.no_grad():
        moe.router.weight.zero_()  # uniform router probabilities
    moe(torch.randn(3, 5, cfg.d_model))
    assert moe.aux.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_moe_output_is_the_renormalised_mix_of_the_top_k_experts(top_k):
    torch.manual_seed(0)
    cfg = tiny(n_experts=4, top_k=top_k)
    moe = MoE(cfg)
    with torch.no_grad():
        moe.router.weight.normal_(0, 1.0)
    x = torch.randn(2, 5, cfg.d_model)
    got = moe(x)
    flat = x.reshape(-1, cfg.d_model)
    probs = moe.router(flat).softmax(-1)
    want = torch.zeros_like(flat)
    for n in range(flat.shape[0]):
        w, e = probs[n].topk(top_k)
        w = w / w.sum()
        for wi, ei in zip(w, e):
            want[n] += wi * moe.experts[int(ei)](flat[n: n + 1])[0]
    torch.testing.assert_close(got, want.view_as(x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- impossible combinations

BAD = [
    (dict(d_model=30, n_head=4), "d_model 30 is not divisible by n_head 4"),
    (dict(n_head=4, n_kv_head=3), "n_kv_head 3 does not divide n_head 4"),
    (dict(n_head=4, n_kv_head=0), "n_kv_head 0 does not divide"),
    (dict(window=T + 1), f"window {T + 1} is outside 1..context"),
    (dict(window=0), "window 0 is outside"),
    (dict(qk_norm=True, norm="none"), "QK-norm"),
    (dict(norm_position="post", norm="none"), "post-norm need a normalisation"),
    (dict(n_experts=4, top_k=5), "top_k 5 is outside 1..n_experts (4)"),
    (dict(n_experts=1), "at least 2 experts"),
    (dict(top_k=1), "top_k 1 is set but there are no experts"),
    (dict(positions="relative"), "unknown positions 'relative'"),
    (dict(norm="batchnorm"), "unknown norm 'batchnorm'"),
    (dict(attention="flash"), "unknown attention 'flash'"),
    (dict(mlp="glu"), "unknown mlp 'glu'"),
    (dict(positions="rope", d_model=36, n_head=4), "RoPE needs an even head size, got 9"),
    (dict(dropout=1.0), "dropout 1.0 is outside"),
    (dict(n_layer=0), "n_layer must be at least 1"),
]


@pytest.mark.parametrize("kw,problem", BAD, ids=[p for _, p in BAD])
def test_impossible_combinations_raise_one_clear_line(kw, problem):
    cfg = GPTConfig(**{**SHAPE, **kw})
    with pytest.raises(ShoestringError) as err:
        cfg.check()
    assert problem in str(err.value)
    assert "\n" not in str(err.value) and err.value.fix  # one line, with a fix
    with pytest.raises(ShoestringError):  # the model refuses it too, and so does from_dict
        GPT(cfg)
    with pytest.raises(ShoestringError):
        GPTConfig.from_dict(cfg.to_dict())


def test_from_dict_rejects_unknown_keys_and_round_trips_known_ones():
    with pytest.raises(ShoestringError, match="unknown model toggle\\(s\\): d_modle, windw"):
        GPTConfig.from_dict({"d_modle": 32, "windw": 4, "n_head": 4})
    cfg = tiny(positions="alibi", window=3, n_kv_head=2)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg


def test_preset_with_a_bad_override_is_refused():
    with pytest.raises(ShoestringError, match="not divisible"):
        preset("baseline", d_model=30, n_head=4)
    with pytest.raises(ShoestringError, match="unknown model toggle"):
        preset("baseline", colour="red")
