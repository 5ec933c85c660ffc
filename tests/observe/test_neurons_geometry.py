"""Neurons and directions (direct logit effect, top activating tokens) and geometry (PCA, k-means, cosine)."""

from __future__ import annotations

import pytest
import torch

import shoestring
from shoestring.errors import ShoestringError
from shoestring.observe import (cosine_matrix, direct_logit_effect, kmeans, neuron_direction, pca, silhouette,
                                top_activating)
from tiny_models import make_lm, tiny_tokenizer


@pytest.fixture
def lm():
    return shoestring.LM(make_lm("llama").model, tiny_tokenizer(), name="tiny", check=False)


def test_neuron_direction_is_the_down_projection_column(lm):
    d = neuron_direction(lm, 1, 5)
    torch.testing.assert_close(d, lm.anatomy.block(1).down.weight[:, 5].detach())
    with pytest.raises(ShoestringError, match="neuron 999 is out of range"):
        neuron_direction(lm, 1, 999)
    with pytest.raises(ShoestringError, match="layer 9 is out of range"):
        neuron_direction(lm, 9, 0)


def test_direct_logit_effect_of_an_unembedding_row_promotes_that_token(lm):
    W = lm.anatomy.unembed.weight.detach()
    g = lm.anatomy.final_norm.weight.detach()
    token = 7
    direction = W[token] / g  # after the gain it is exactly the token's unembedding row
    out = direct_logit_effect(lm, direction, k=3)
    assert out["promotes"][0][0] == lm.tokenizer.decode([token])
    assert out["promotes"][0][1] == pytest.approx(float(W[token] @ W[token]), abs=1e-4)
    assert len(out["suppresses"]) == 3 and out["suppresses"][0][1] <= out["promotes"][-1][1]
    with pytest.raises(ShoestringError, match="shape"):
        direct_logit_effect(lm, torch.ones(3))


def test_top_activating_matches_a_brute_force_search(lm):
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(2, 100, (2, 6), generator=g) for _ in range(3)]
    out = top_activating(lm, batches, "blocks.0.mlp.hook_post", unit=4, k=3, window=2)
    ids = torch.cat(batches)
    with torch.no_grad(), lm.capture("blocks.0.mlp.hook_post") as acts:
        lm.model(input_ids=ids)
    v = acts["blocks.0.mlp.hook_post"][..., 4].reshape(-1)
    best = v.topk(3)
    assert [r["token_index"] for r in out["top"]] == best.indices.tolist()
    assert out["top"][0]["value"] == pytest.approx(float(best.values[0]), abs=1e-4)
    assert sum(out["histogram"]["counts"]) == v.numel()
    with pytest.raises(ShoestringError, match="exactly one"):
        top_activating(lm, batches, "blocks.0.mlp.hook_post")


def test_pca_finds_a_planted_plane():
    g = torch.Generator().manual_seed(0)
    plane = torch.randn(200, 2, generator=g) @ torch.tensor([[3.0, 0, 0, 0], [0, 2.0, 0, 0]])
    X = plane + 0.01 * torch.randn(200, 4, generator=g)
    p = pca(X, k=2)
    assert float(p.explained.sum()) > 0.99 and p.projected.shape == (200, 2)
    assert abs(float(p.components[0, 0])) > 0.95  # the largest variance lies along the first axis
    with pytest.raises(ShoestringError, match="PCA needs"):
        pca(torch.ones(1, 4))


def test_kmeans_and_silhouette_on_separated_blobs():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g) + 10
    X = torch.cat([a, b])
    labels, cent = kmeans(X, 2, seed=0)
    assert len(set(labels[:50].tolist())) == 1 and len(set(labels[50:].tolist())) == 1 and labels[0] != labels[-1]
    assert silhouette(X, labels) > 0.8
    assert silhouette(X, torch.randint(0, 2, (100,), generator=g)) < 0.1  # random labels: no structure
    with pytest.raises(ShoestringError, match="two clusters"):
        silhouette(X, torch.zeros(100))


def test_cosine_matrix():
    names, M = cosine_matrix({"a": torch.tensor([1.0, 0]), "b": torch.tensor([0, 2.0]), "c": torch.tensor([-1.0, 0])})
    assert names == ["a", "b", "c"]
    torch.testing.assert_close(M, torch.tensor([[1.0, 0, -1], [0, 1, 0], [-1, 0, 1]]))
