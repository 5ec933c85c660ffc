"""Applying directions: each mode does exactly its formula, positions are honoured, hooks always go away."""

from __future__ import annotations

import pytest
import torch

from steer_helpers import NEG, POS, smol_lm  # noqa: F401
from tiny_models import no_hooks_left

from shoestring.errors import ShoestringError
from shoestring.sae import make_sae
from shoestring.steer import Direction, MeanDiff, Steer, clamp_feature, generate
from shoestring.steer.apply import _add_sequence

HOOK = "blocks.1.hook_resid_post"


def resid(lm, text="hello there friend", **steer):
    ctx = Steer(lm, **steer) if steer else None
    with lm.capture(HOOK) as cap:
        if ctx is None:
            lm.forward([text])
        else:
            with ctx:
                lm.forward([text])
    return cap[HOOK][0]


@pytest.fixture(scope="module")
def direction(smol_lm):
    return MeanDiff(layers=(1,)).fit(smol_lm, POS, NEG)


def test_add_and_relative_add(smol_lm, direction):
    base = resid(smol_lm)
    v = direction.vectors[1]
    assert torch.allclose(resid(smol_lm, direction=direction, scale=3.0) - base, 3.0 * v.expand_as(base), atol=1e-5)
    rel = resid(smol_lm, direction=direction, scale=0.5, relative=True) - base
    assert torch.allclose(rel.norm(dim=-1), 0.5 * base.norm(dim=-1), rtol=1e-4)


def test_ablate_and_ablate_then_add(smol_lm, direction):
    u = direction.unit(1)
    assert float((resid(smol_lm, direction=direction, mode="ablate") @ u).abs().max()) < 1e-5
    proj = resid(smol_lm, direction=direction, mode="ablate_add", scale=2.5) @ u
    assert torch.allclose(proj, torch.full_like(proj, 2.5), atol=1e-4)


def test_positions_generated_leaves_the_first_new_token_alone(smol_lm, direction):
    prompts = ["The food was", "A long day at"]
    base = generate(smol_lm, prompts, max_new_tokens=4)
    gen_only = generate(smol_lm, prompts, Steer(smol_lm, direction, scale=200.0, positions="generated"), max_new_tokens=4)
    prompt_only = generate(smol_lm, prompts, Steer(smol_lm, direction, scale=200.0, positions="prompt"), max_new_tokens=4)
    tok = smol_lm.tokenizer
    first = [tok(t, add_special_tokens=False)["input_ids"][:1] for t in base]
    assert [tok(t, add_special_tokens=False)["input_ids"][:1] for t in gen_only] == first
    assert gen_only != base and prompt_only != base


def test_sampled_generation_is_reproducible_with_a_seed(smol_lm, direction):
    a = generate(smol_lm, ["The food was"], Steer(smol_lm, direction, scale=5.0), max_new_tokens=6, do_sample=True, seed=7)
    b = generate(smol_lm, ["The food was"], Steer(smol_lm, direction, scale=5.0), max_new_tokens=6, do_sample=True, seed=7)
    assert a == b


def test_hooks_are_removed_even_after_an_error(smol_lm, direction):
    before = no_hooks_left(smol_lm.model)  # the model's own (the loader's) hooks, if any
    with pytest.raises(RuntimeError):
        with Steer(smol_lm, direction, scale=1.0):
            raise RuntimeError("boom")
    assert no_hooks_left(smol_lm.model) == before


def test_bad_steering_settings(smol_lm, direction):
    with pytest.raises(ShoestringError, match="unknown steering mode"):
        Steer(smol_lm, direction, mode="push")
    with pytest.raises(ShoestringError, match="no vector for layer"):
        Steer(smol_lm, direction, layers=(0,))
    with pytest.raises(ShoestringError, match="width 7"):
        Steer(smol_lm, Direction({1: torch.randn(7)}))


def test_sequences_go_at_the_first_real_token():
    act = torch.zeros(2, 5, 3)
    out = _add_sequence(act, torch.ones(2, 3), torch.tensor([0, 2]))
    assert out[0, :2].sum() == 6 and out[0, 2:].sum() == 0
    assert out[1, :2].sum() == 0 and out[1, 2:4].sum() == 6 and out[1, 4].sum() == 0


def test_clamp_and_flip_change_only_that_feature(smol_lm):
    before = no_hooks_left(smol_lm.model)
    sae = make_sae("topk", 32, 64, k=8, hook_name=HOOK)
    base = resid(smol_lm)
    z = sae.encode(base)
    f = int(z[1:].sum(0).argmax())
    with smol_lm.capture(HOOK) as cap, clamp_feature(smol_lm, sae, f, value=7.0):
        smol_lm.forward(["hello there friend"])
    delta = cap[HOOK][0] - base
    expect = (7.0 - z[:, f])[:, None] * sae.W_dec[f].detach()
    assert torch.allclose(delta, expect, atol=1e-4)
    with smol_lm.capture(HOOK) as cap, clamp_feature(smol_lm, sae, f, flip=True):
        smol_lm.forward(["hello there friend"])
    assert torch.allclose(cap[HOOK][0] - base, (-2 * z[:, f])[:, None] * sae.W_dec[f].detach(), atol=1e-4)
    with pytest.raises(ShoestringError, match="either value"):
        clamp_feature(smol_lm, sae, f)
    assert no_hooks_left(smol_lm.model) == before
