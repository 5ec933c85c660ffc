"""Build report pages from tiny random models' results (shared by the figure, page and browser tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

import shoestring
from shoestring.observe import (TunedLens, attention_pattern, direct_logit_attribution, geometry_summary,
                                head_census, logit_lens, patch_heads, patch_residual, probe_layers, token_activations)
from shoestring.report import (Page, add_dla, add_geometry, add_heads, add_lens, add_neuron, add_patch, add_pattern,
                               add_probe)
from tiny_models import make_lm, tiny_tokenizer

PROMPT = "w5 w6 w7 w8 w9"
CLEAN, CORRUPT = "w3 w4 w5 w6", "w3 w9 w5 w6"


def tiny_lm(layers: int = 3) -> shoestring.LM:
    """A tiny random Llama with the word-level tiny tokenizer ('w2' ... 'w99')."""
    return shoestring.LM(make_lm("llama", num_hidden_layers=layers).model, tiny_tokenizer(), name="tiny", check=False)


def identity_tuned_lens(lm) -> TunedLens:
    """A tuned lens whose translators are the identity (plus a small bias, so it differs from the logit lens)."""
    n, d = lm.n_layers, lm.anatomy.d_model
    g = torch.Generator().manual_seed(3)
    return TunedLens(n, list(range(n - 1)), torch.eye(d).repeat(n - 1, 1, 1), 0.5 * torch.randn(n - 1, d, generator=g),
                     {"model": lm.name})


def labelled_features(n: int = 60, d: int = 8, layers=(0, 1, 2), seed: int = 0):
    """Features where the label is linearly readable, more so at later layers; texts with varied first words."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    feats = {}
    for i, L in enumerate(layers):
        X = torch.randn(n, d, generator=g)
        X[:, 0] += (i + 0.5) * (2 * y - 1).float()
        feats[L] = X
    texts = [f"word{i % 23} example {i}" for i in range(n)]
    return feats, y.tolist(), texts


@dataclass
class Built:
    page: Page
    titles: list[str] = field(default_factory=list)
    token_spans: int = 0  # highlighted tokens (spans with a title)


def full_page(lm=None) -> Built:
    """One page with every kind of section, from a tiny model's real results."""
    lm = lm or tiny_lm()
    page = Page("every report piece", subtitle="tiny random model", meta={"model": lm.name})
    r = logit_lens(lm, PROMPT, target="w9")
    add_lens(page, r, logit_lens(lm, PROMPT, target="w9", lens=identity_tuned_lens(lm)), prompt=PROMPT, target="w9")
    add_heads(page, head_census(lm, seq_len=8, batch=2))
    tokens, pattern = attention_pattern(lm, PROMPT + " " + PROMPT, 1, 0)
    add_pattern(page, tokens, pattern, 1, 0, PROMPT + " " + PROMPT)
    feats, labels, texts = labelled_features()
    add_probe(page, probe_layers(feats, labels, texts=texts, n_boot=50), "synthetic")
    add_geometry(page, geometry_summary(feats[2], labels), 2, "synthetic", {0: "no", 1: "yes"}, texts)
    add_patch(page, patch_residual(lm, CLEAN, CORRUPT, "w30", "w31"), CLEAN, CORRUPT, "w30", "w31")
    add_patch(page, patch_heads(lm, CLEAN, CORRUPT, "w30", "w31"), title="Head patching")
    add_dla(page, direct_logit_attribution(lm, CLEAN, "w30", "w31"), CLEAN, "w30", "w31")
    lines = [(f"text {i}", *token_activations(lm, t, "blocks.1.mlp.hook_post", unit=3)) for i, t in
             enumerate([PROMPT, CLEAN])]
    n_tokens = sum(len(toks) for _, toks, _ in lines)
    add_neuron(page, "L1N3", texts=lines)
    return Built(page, [s.title for s in page.sections], n_tokens)
