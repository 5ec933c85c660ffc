"""search_by_text / search_by_contrast find a planted latent; feature_logits reads a planted decoder row."""

from __future__ import annotations

import math

import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.sae.features import feature_logits, search_by_contrast, search_by_text
from shoestring.sae.search import encode_texts

from sae_feature_helpers import lm_with_tokenizer, make_sae, token_sae

PLANT = 42  # latent 5 of token_sae fires on 'w42' only


@pytest.fixture(scope="module")
def lm():
    return lm_with_tokenizer()


@pytest.fixture(scope="module")
def sae(lm):
    return token_sae(lm, PLANT)


def test_search_by_text_finds_the_planted_latent_where_it_fired(lm, sae):
    rows = search_by_text(sae, lm, "w5 w42 w7 w9 w42 w3", top=10)
    assert rows[0]["latent"] == 5 and rows[0]["max"] == pytest.approx(2.0, rel=1e-3)
    assert [(f["position"], f["token"]) for f in rows[0]["fired_on"]] == [(1, "w42"), (4, "w42")]
    assert rows[0]["tokens"] == ["w5", "w42", "w7", "w9", "w42", "w3"]
    assert [r["max"] for r in rows] == sorted((r["max"] for r in rows), reverse=True) and all(r["max"] > 0 for r in rows)
    assert 5 not in [r["latent"] for r in search_by_text(sae, lm, "w5 w43 w7 w9", top=64)]


def test_bos_is_left_out(lm, sae):
    [(tokens, z)] = encode_texts(sae, lm, ["<bos> w42 w7"])
    assert tokens == ["w42", "w7"] and z.shape == (2, 64)
    plain = search_by_text(sae, lm, "<bos> w42 w7")[0]
    assert plain["latent"] == 5 and plain["fired_on"][0]["position"] == 0


def test_texts_of_different_lengths_match_one_at_a_time(lm, sae):
    texts = ["w5 w42", "w7 w8 w9 w42", "w10 w11", "w12 w13 w14 w15"]
    together = encode_texts(sae, lm, texts)
    for text, (tokens, z) in zip(texts, together):
        [(tokens1, z1)] = encode_texts(sae, lm, [text])
        assert tokens == tokens1 and torch.allclose(z, z1, atol=1e-6)


def test_search_by_contrast_ranks_the_planted_latent_first(lm, sae):
    a = ["w5 w42 w7", "w42 w9 w11 w12", "w30 w31 w42", "w42"]
    b = ["w5 w6 w7", "w8 w9 w11 w12", "w30 w31 w33", "w50 w51"]
    rows = search_by_contrast(sae, lm, a, b, top=5)
    top = rows[0]
    assert top["latent"] == 5
    assert top["mean_a"] == pytest.approx(2.0, rel=1e-3) and top["mean_b"] == 0.0
    assert top["fired_a"] == 1.0 and top["fired_b"] == 0.0
    assert top["t"] > 1e3  # both sets (nearly) constant: inf, or huge from float noise across batch shapes
    assert all(r["diff"] > 0 for r in rows) and [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert 5 not in [r["latent"] for r in search_by_contrast(sae, lm, b, a, top=64)]  # the other way round


def test_welch_t_by_hand(lm, sae):
    a, b = ["w5 w6", "w7 w8 w9"], ["w10 w11", "w12 w13 w14"]
    rows = search_by_contrast(sae, lm, a, b, top=64)
    enc = encode_texts(sae, lm, a + b)
    s = torch.stack([z.amax(0) for _, z in enc]).double()
    for r in rows[:3]:
        sa, sb = s[:2, r["latent"]], s[2:, r["latent"]]
        se = math.sqrt(sa.var().item() / 2 + sb.var().item() / 2)
        assert r["diff"] == pytest.approx(float(sa.mean() - sb.mean()))
        if se > 0:
            assert r["t"] == pytest.approx(r["diff"] / se)


def test_empty_sets_and_texts_are_refused(lm, sae):
    with pytest.raises(ShoestringError, match="both sides"):
        search_by_contrast(sae, lm, [], ["w5"])
    with pytest.raises(ShoestringError, match="both sides"):
        search_by_contrast(sae, lm, ["w5"], [])
    with pytest.raises(ShoestringError, match="non-empty"):
        search_by_text(sae, lm, "")
    with pytest.raises(ShoestringError, match="besides BOS"):
        search_by_text(sae, lm, "<bos>")
    with pytest.raises(ShoestringError, match="wide"):
        search_by_text(make_sae("topk", 48, 16, k=2, hook_name="blocks.0.mlp.hook_post"), lm, "w5 w6")


def test_feature_logits_reads_a_planted_decoder_row(lm):
    sae = make_sae("topk", 32, 16, k=2, hook_name="blocks.1.hook_resid_post")
    W_U = lm.anatomy.unembed.weight.detach().float()
    gain = lm.anatomy.final_norm.weight.detach().float()
    with torch.no_grad():
        sae.W_dec[3] = W_U[77] / gain  # through the norm's gain this is exactly the unembedding row of w77
        sae.W_dec[4] = -W_U[60] / gain
    out = feature_logits(sae, lm, [3, 4], k=5)
    assert out[3]["promotes"][0][0] == "w77" and out[4]["suppresses"][0][0] == "w60"
    assert len(out[3]["promotes"]) == len(out[3]["suppresses"]) == 5
    with pytest.raises(ShoestringError, match="residual"):
        feature_logits(make_sae("topk", 32, 16, k=2, d_out=64, hook_name_out="blocks.0.mlp.hook_post"), lm, [0])
    with pytest.raises(ShoestringError, match="out of range"):
        feature_logits(sae, lm, [16])
