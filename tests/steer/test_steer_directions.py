"""Direction methods: each computes what its paper says, refuses bad sets, and round-trips through disk."""

from __future__ import annotations

import pytest
import torch

from steer_helpers import NEG, POS, smol_lm  # noqa: F401

from shoestring.errors import ShoestringError
from shoestring.observe.probes import collect
from shoestring.steer import ActAdd, Direction, MeanDiff, PCADiff, ProbeDirection, SAEFeature
from shoestring.sae import make_sae


def test_mean_diff_is_the_difference_of_last_token_means(smol_lm):
    d = MeanDiff(layers=(0, 1)).fit(smol_lm, POS, NEG)
    for layer in (0, 1):
        hook = f"blocks.{layer}.hook_resid_post"
        p, n = collect(smol_lm, POS, hook=hook)[layer], collect(smol_lm, NEG, hook=hook)[layer]
        assert torch.allclose(d.vectors[layer], p.mean(0) - n.mean(0), atol=1e-5)
    assert d.method == "mean_diff" and d.meta["n_positive"] == 3


def _planted(n=40, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    axis = torch.zeros(d)
    axis[3] = 1.0
    base = torch.randn(n, d, generator=g)
    pos = base + 2.0 * axis + 0.1 * torch.randn(n, d, generator=g)
    neg = base - 2.0 * axis + 0.1 * torch.randn(n, d, generator=g)
    return pos, neg, axis


def test_pca_of_paired_differences_finds_the_planted_axis_with_the_right_sign():
    pos, neg, axis = _planted()
    v = PCADiff().combine(pos, neg)
    cos = float(v @ axis / v.norm())
    assert cos > 0.95  # positive: points from negative to positive
    assert float(v.norm()) == pytest.approx(float((pos - neg).mean(0) @ (v / v.norm())), rel=1e-4)
    assert float(PCADiff().combine(neg, pos) @ axis) < 0


def test_probe_direction_separates_and_points_to_positive():
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(60, 8, generator=g) + torch.tensor([3.0] + [0.0] * 7)
    neg = torch.randn(60, 8, generator=g) - torch.tensor([3.0] + [0.0] * 7)
    v = ProbeDirection().combine(pos, neg)
    assert float(v[0] / v.norm()) > 0.9


def test_bad_contrastive_sets_are_one_line_errors(smol_lm):
    with pytest.raises(ShoestringError, match="unequal length: 3 positive vs 2 negative"):
        MeanDiff(layers=(1,)).fit(smol_lm, POS, NEG[:2])
    with pytest.raises(ShoestringError, match="empty"):
        MeanDiff(layers=(1,)).fit(smol_lm, [], NEG)
    with pytest.raises(ShoestringError, match="out of range"):
        MeanDiff(layers=(7,)).fit(smol_lm, POS, NEG)
    d = MeanDiff(layers=(1,), paired=False).fit(smol_lm, POS, NEG[:2])  # unpaired sets may differ
    assert d.layers == [1]


def test_actadd_is_the_positionwise_difference_padded_with_spaces(smol_lm):
    d = ActAdd(layers=(1,)).fit(smol_lm, "Love", "Hate it here")
    tok = smol_lm.tokenizer
    a, b = tok("Love")["input_ids"], tok("Hate it here")["input_ids"]
    space = tok(" ", add_special_tokens=False)["input_ids"][-1]
    a = a + [space] * (len(b) - len(a))
    _, acts = smol_lm.run_with_cache(torch.tensor([a, b]), ["blocks.1.hook_resid_pre"])
    h = acts["blocks.1.hook_resid_pre"]
    assert d.vectors[1].shape == (len(b), smol_lm.anatomy.d_model)
    assert torch.allclose(d.vectors[1], h[0] - h[1], atol=1e-5)


def test_sae_feature_is_its_unit_decoder_row():
    sae = make_sae("topk", 32, 64, k=4, hook_name="blocks.1.hook_resid_post")
    d = SAEFeature(5).fit(sae)
    assert d.hook_name(1) == "blocks.1.hook_resid_post" and d.layers == [1]
    assert torch.allclose(d.vectors[1], sae.W_dec[5].detach() / sae.W_dec[5].detach().norm())
    with pytest.raises(ShoestringError, match="out of range"):
        SAEFeature(64).fit(sae)


def test_save_load_random_control_and_width_check(smol_lm, tmp_path):
    d = MeanDiff(layers=(0, 1)).fit(smol_lm, POS, NEG)
    back = Direction.load(d.save(tmp_path / "dir"))
    assert back.layers == [0, 1] and back.method == "mean_diff"
    assert all(torch.equal(back.vectors[k], d.vectors[k]) for k in d.layers)
    r = d.random_like(seed=3)
    for k in d.layers:
        assert float(r.vectors[k].norm()) == pytest.approx(float(d.vectors[k].norm()), rel=1e-5)
        assert abs(float(torch.cosine_similarity(r.vectors[k], d.vectors[k], dim=0))) < 0.9
    wrong = Direction({1: torch.randn(48)})
    with pytest.raises(ShoestringError, match="width 48"):
        wrong.check_model(smol_lm)
    with pytest.raises(ShoestringError, match="no direction"):
        Direction.load(tmp_path / "nothing")
