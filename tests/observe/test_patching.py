"""Activation patching and direct logit attribution, on tiny random models (and one slow SmolLM2 check)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_lm, make_model, random_ids, tiny_tokenizer

import shoestring
from shoestring.errors import ShoestringError
from shoestring.observe.attribution import direct_logit_attribution
from shoestring.observe.patching import patch_heads, patch_one, patch_residual

ANSWER, WRONG, DIFF = 5, 7, 2  # token ids; the prompts differ at position DIFF


@pytest.fixture(scope="module")
def lm():
    return make_lm("llama")


@pytest.fixture(scope="module")
def pair():
    clean = random_ids(1, 6)[0]
    corrupt = clean.clone()
    corrupt[DIFF] = 50 if clean[DIFF] != 50 else 51
    return clean, corrupt


def test_grid_shape_and_normalisation(lm, pair):
    r = patch_residual(lm, *pair, ANSWER, WRONG)
    assert r.grid.shape == (lm.n_layers, 6)
    assert len(r.columns) == 6 and r.clean != r.corrupt
    # before the differing token nothing differs: patching it changes nothing (score 0)
    assert torch.allclose(r.grid[:, :DIFF], torch.zeros(lm.n_layers, DIFF), atol=1e-4)
    # at layer 0 only the differing position carries any difference: it restores everything
    assert r.grid[0, DIFF] == pytest.approx(1.0, abs=1e-4)
    # the score is (patched - corrupt) / (clean - corrupt): check one cell against a manual run
    with lm.capture("blocks.1.hook_resid_pre") as acts, torch.no_grad():
        lm.model(input_ids=pair[0][None])
    clean_act = acts["blocks.1.hook_resid_pre"]

    def put(a):
        a = a.clone()
        a[:, 4] = clean_act[:, 4]
        return a

    with lm.edit({"blocks.1.hook_resid_pre": put}), torch.no_grad():
        logits = lm.model(input_ids=pair[1][None]).logits[0, -1]
    patched = float(logits[ANSWER] - logits[WRONG])
    assert r.grid[1, 4] == pytest.approx((patched - r.corrupt) / (r.clean - r.corrupt), abs=1e-4)


def test_last_layer_last_position_restores_exactly(lm, pair):
    r = patch_residual(lm, *pair, ANSWER, WRONG, hook="resid_post")
    assert r.grid[-1, -1] == pytest.approx(1.0, abs=1e-4)
    assert r.grid[-1, :-1].abs().max() < 1e-4  # the logits read only the last position


@pytest.mark.parametrize("hook", ["attn_out", "mlp_out"])
def test_branch_hooks_and_prob_metric(lm, pair, hook):
    r = patch_residual(lm, *pair, ANSWER, hook=hook, metric="prob", batch_size=5)
    assert r.grid.shape == (lm.n_layers, 6) and r.metric == "prob"
    assert torch.isfinite(r.grid).all()


def test_batch_size_does_not_change_the_grid(lm, pair):
    a = patch_residual(lm, *pair, ANSWER, WRONG, batch_size=1).grid
    b = patch_residual(lm, *pair, ANSWER, WRONG, batch_size=64).grid
    assert torch.allclose(a, b, atol=1e-4)


def test_all_heads_of_a_layer_equal_the_whole_hook_z(lm, pair):
    clean, corrupt = pair
    every = patch_one(lm, clean, corrupt, ANSWER, WRONG, "blocks.1.attn.hook_z", heads=list(range(4)))
    whole = patch_one(lm, clean, corrupt, ANSWER, WRONG, "blocks.1.attn.hook_z")
    assert every == pytest.approx(whole, abs=1e-5)
    # and it equals patching the attention output of that layer
    attn = patch_one(lm, clean, corrupt, ANSWER, WRONG, "blocks.1.hook_attn_out")
    assert whole == pytest.approx(attn, abs=1e-4)


def test_head_grid(lm, pair):
    r = patch_heads(lm, *pair, ANSWER, WRONG)
    assert r.grid.shape == (lm.n_layers, lm.anatomy.n_heads)
    last = patch_heads(lm, *pair, ANSWER, WRONG, position=-1)
    one = patch_one(lm, *pair, ANSWER, WRONG, "blocks.0.attn.hook_z", position=-1, heads=2)
    assert last.grid[0, 2] == pytest.approx(one, abs=1e-4)
    assert r.top(2)[0]["score"] >= r.top(2)[1]["score"]


def test_text_prompts_and_answers():
    lm = shoestring.LM(make_model("llama"), tiny_tokenizer(), name="llama", check=False)
    r = patch_residual(lm, "w3 w4 w5 w6", "w3 w9 w5 w6", "w10", wrong="w11")
    assert r.grid.shape == (lm.n_layers, 4) and r.columns[1] == "1:w9"  # the corrupted prompt's tokens
    with pytest.raises(ShoestringError, match="2 tokens"):
        patch_residual(lm, "w3 w4 w5 w6", "w3 w9 w5 w6", "w10 w11")
    with pytest.raises(ShoestringError, match="4 tokens but corrupt prompt is 3"):
        patch_residual(lm, "w3 w4 w5 w6", "w3 w9 w5", "w10")


def test_bad_inputs(lm, pair):
    clean, corrupt = pair
    with pytest.raises(ShoestringError, match="same metric"):
        patch_residual(lm, clean, clean, ANSWER, WRONG)
    with pytest.raises(ShoestringError, match="unknown hook"):
        patch_residual(lm, clean, corrupt, ANSWER, hook="resid_mid")
    with pytest.raises(ShoestringError, match="unknown metric"):
        patch_residual(lm, clean, corrupt, ANSWER, metric="kl")
    with pytest.raises(ShoestringError, match="out of range"):
        patch_residual(lm, clean, corrupt, 10_000)
    with pytest.raises(ShoestringError, match="no tokenizer"):
        patch_residual(lm, clean, corrupt, " Paris")
    with pytest.raises(ShoestringError, match="position 6 is out of range"):
        patch_heads(lm, clean, corrupt, ANSWER, position=6)
    with pytest.raises(ShoestringError, match="'all' or an int"):
        patch_heads(lm, clean, corrupt, ANSWER, position="last")
    with pytest.raises(ShoestringError, match="head 4 is out of range"):
        patch_one(lm, clean, corrupt, ANSWER, hook="blocks.0.attn.hook_z", heads=4)
    with pytest.raises(ShoestringError, match="layer 2 is out of range"):
        patch_one(lm, clean, corrupt, ANSWER, hook="blocks.2.hook_resid_pre")
    with pytest.raises(ShoestringError, match="no head axis"):
        patch_one(lm, clean, corrupt, ANSWER, hook="blocks.0.hook_resid_pre", heads=0)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox_parallel", "gemma", "opt"])
def test_dla_sums_to_the_logit(family):
    lm = make_lm(family)
    ids = random_ids(1, 6)[0]
    with torch.no_grad():
        logits = lm.model(input_ids=ids[None]).logits[0, -1]
    r = direct_logit_attribution(lm, ids, ANSWER, wrong=WRONG)
    assert r.heads.shape == (lm.n_layers, lm.anatomy.n_heads) and r.mlps.shape == (lm.n_layers,)
    assert r.logit == pytest.approx(float(logits[ANSWER] - logits[WRONG]), abs=1e-4)
    assert r.total() == pytest.approx(r.logit, abs=1e-4)
    single = direct_logit_attribution(lm, ids, ANSWER)
    assert single.total() == pytest.approx(float(logits[ANSWER]), abs=1e-4)
    assert len(r.top(3)) == 3


@pytest.mark.slow
def test_smollm2_eiffel_tower():
    lm = shoestring.load()
    clean, corrupt = "The Eiffel Tower is in the city of", "The Colosseum is in the city of"
    r = patch_residual(lm, clean, corrupt, " Paris", wrong=" Rome", batch_size=32)
    assert r.grid.shape == (30, 9)
    assert r.clean > 0 > r.corrupt  # Paris wins on the clean prompt, Rome on the corrupt one
    assert r.grid[0, 1:4].max() > 0.5  # early: the subject tokens (3 of them, so no single one carries all)
    assert r.grid[-1, -1] > 0.5  # late: the last token carries most of it (resid_pre: the last block still reads others)
    assert r.grid[:, 0].abs().max() < 1e-3  # "The" is the same in both
    d = direct_logit_attribution(lm, clean, " Paris", wrong=" Rome")
    assert d.total() == pytest.approx(d.logit, abs=1e-2)
    print("\ngrid:\n", r.grid.numpy().round(2), "\npatch_residual top:", r.top(8), "\nlayers 0..29 at last pos:", [round(float(v), 2) for v in r.grid[:, -1]],
          "\nDLA top:", d.top(8), "logit diff", d.logit)
