"""Logit lens and the attention-head census."""

from __future__ import annotations

import pytest
import torch

import shoestring
from shoestring.errors import ShoestringError
from shoestring.observe import head_census, logit_lens
from tiny_models import make_lm, tiny_tokenizer


@pytest.fixture
def lm():
    model_lm = make_lm("llama")
    return shoestring.LM(model_lm.model, tiny_tokenizer(), name="tiny", check=False)


def test_lens_last_layer_is_the_models_distribution(lm):
    r = logit_lens(lm, "a b c d")
    assert r.logprobs.shape == (lm.n_layers, lm.anatomy.d_vocab)
    torch.testing.assert_close(r.logprobs[-1], r.final, atol=1e-5, rtol=0)
    rows = r.rows(3)
    assert rows[-1]["kl_to_final"] == pytest.approx(0.0, abs=1e-4)
    assert all(len(row["top_tokens"]) == 3 for row in rows)
    assert rows[0]["kl_to_final"] > 0  # an earlier layer reads something else


def test_lens_equals_manual_unembedding_of_a_middle_layer(lm):
    enc = lm.tokenize("a b c d")
    with torch.no_grad(), lm.capture("blocks.0.hook_resid_post") as acts:
        lm.model(**enc)
        manual = lm.unembed(acts["blocks.0.hook_resid_post"][:, 1]).log_softmax(-1)[0]
    r = logit_lens(lm, "a b c d", position=1)
    torch.testing.assert_close(r.logprobs[0], manual.float())


def test_lens_target_rank_and_bad_inputs(lm):
    r = logit_lens(lm, "a b c d", target="b")
    rows = r.rows()
    tid = lm.tokenizer.encode("b", add_special_tokens=False)[0]
    for i, row in enumerate(rows):
        assert row["target_rank"] == int((r.logprobs[i] > r.logprobs[i, tid]).sum())
    with pytest.raises(ShoestringError, match="not one"):
        logit_lens(lm, "a b", target="a b")
    with pytest.raises(ShoestringError, match="outside the prompt"):
        logit_lens(lm, "a b", position=5)
    lm.model.config.max_position_embeddings = 3
    with pytest.raises(ShoestringError, match="longer than the model's context"):
        logit_lens(lm, "a b c d e")


def test_head_census_scores_match_the_pattern(lm):
    census = head_census(lm, seq_len=8, batch=2, seed=1)
    for name in ("induction", "previous_token", "duplicate_token", "sink", "local"):
        s = census.scores[name]
        assert s.shape == (lm.n_layers, lm.anatomy.n_heads) and (s >= 0).all() and (s <= 1 + 1e-5).all()
    # recompute one induction score by hand from the same inputs
    g = torch.Generator().manual_seed(1)
    vocab = lm.anatomy.d_vocab
    rand = torch.randint(min(1000, vocab // 4), vocab, (2, 8), generator=g)
    bos = lm.tokenizer.bos_token_id
    ids = torch.cat([torch.full((2, 1), bos), rand, rand], 1)
    with torch.no_grad(), lm.capture("blocks.1.attn.hook_pattern") as acts:
        lm.model(input_ids=ids)
    p = acts["blocks.1.attn.hook_pattern"].float().mean(0)  # [head, q, k]
    q = torch.arange(9, 17)
    manual = p[:, q, q - 8 + 1].mean(-1)
    torch.testing.assert_close(census.scores["induction"][1], manual)
    top = census.top("induction", 3)
    assert top[0]["score"] == pytest.approx(float(census.scores["induction"].max()), abs=1e-4)
    with pytest.raises(ShoestringError, match="unknown head score"):
        census.top("nope")


@pytest.mark.slow
def test_smollm2_lens_and_induction_heads():
    lm = shoestring.load()
    r = logit_lens(lm, "The capital of France is", target=" Paris")
    torch.testing.assert_close(r.logprobs[-1], r.final, atol=1e-4, rtol=0)
    assert r.rows()[-1]["target_rank"] == 0
    census = head_census(lm)
    best = census.top("induction", 3)
    assert best[0]["score"] > 0.5, best  # SmolLM2 has induction heads (measured: L18H6 ~0.88)
    assert census.scores["induction"].mean() < 0.2  # and most heads are not
