"""A tiny store whose contexts hold two documents each, and SAEs with a latent planted where we can predict it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

for _dir in ("store", "report"):  # store_helpers, browser_check: appended, so they shadow nothing
    _path = str(Path(__file__).resolve().parent.parent / _dir)
    if _path not in sys.path:
        sys.path.append(_path)

import shoestring  # noqa: E402
from shoestring.sae import make_sae  # noqa: E402
from shoestring.store import ActivationStore, cache_activations  # noqa: E402
from store_helpers import VOCAB, tiny_lm  # noqa: E402
from tiny_models import tiny_tokenizer  # noqa: E402

T_CTX, N_BATCHES, BATCH = 16, 10, 4
SPLIT = 7  # positions 1..6 are one document, 7..15 the next
HOOK = "blocks.1.hook_resid_post"
COORD = 3  # latent 0 of planted_sae() is this residual coordinate


def lm_with_tokenizer() -> shoestring.LM:
    """The store tests' tiny Llama with the word-level tokenizer ('<bos>' = 0, 'w2' ... 'w99')."""
    return shoestring.LM(tiny_lm().model, tiny_tokenizer(), name="tiny", check=False)


def two_doc_batches(n_batches: int = N_BATCHES, batch: int = BATCH, seed: int = 0):
    """Packed contexts: an inserted BOS (doc -1, position -1), then two documents with their own positions."""
    g = torch.Generator().manual_seed(seed)
    for i in range(n_batches):
        tok = torch.randint(2, VOCAB, (batch, T_CTX), generator=g)
        tok[:, 0] = 0
        ctx = torch.arange(batch)[:, None] + i * batch  # context number
        docs = torch.where(torch.arange(T_CTX) < SPLIT, 2 * ctx, 2 * ctx + 1).expand(batch, T_CTX).clone()
        docs[:, 0] = -1
        pos = torch.where(torch.arange(T_CTX) < SPLIT, torch.arange(T_CTX) - 1, torch.arange(T_CTX) - SPLIT)
        pos = pos.expand(batch, T_CTX).clone()
        pos[:, 0] = -1
        yield tok, docs, pos


def make_store(folder, lm=None) -> ActivationStore:
    lm = lm or lm_with_tokenizer()
    cache_activations(lm, two_doc_batches(), hooks=[HOOK], out=folder, target_tokens=T_CTX * BATCH * N_BATCHES,
                      context_length=T_CTX, shard_tokens=T_CTX * 8, progress=False)
    return ActivationStore(folder)


def text_rows(store: ActivationStore) -> np.ndarray:
    """Global indices of the non-BOS rows, from the layout alone (every context starts with BOS)."""
    return np.nonzero(np.arange(len(store)) % T_CTX != 0)[0]


def planted_sae(d_in: int = 32, d_sae: int = 64, k: int = 4, hook: str = HOOK, coord: int = COORD):
    """A TopK SAE whose latent 0 reads residual coordinate ``coord``; the other latents are damped 20x so
    latent 0 wins its top-k slot wherever that coordinate is large."""
    sae = make_sae("topk", d_in, d_sae, k=k, hook_name=hook, seed=0)
    with torch.no_grad():
        sae.W_enc *= 0.05
        sae.W_enc[:, 0] = 0
        sae.W_enc[coord, 0] = 1.0
    return sae


def token_sae(lm, token_id: int, d_sae: int = 64, k: int = 4):
    """A TopK SAE on ``blocks.0.hook_resid_pre`` (the token embedding) whose latent 5 fires on ``token_id``
    only: its encoder column is that embedding, scaled so the token scores 10, with a bias of -8."""
    emb = lm.model.get_input_embeddings().weight[token_id].detach().float()
    d = emb.shape[0]
    sae = make_sae("topk", d, d_sae, k=k, hook_name="blocks.0.hook_resid_pre", seed=0)
    with torch.no_grad():
        sae.W_enc *= 0.01
        sae.W_enc[:, 5] = 10 * emb / emb.pow(2).sum()
        sae.b_enc[5] = -8.0
    return sae
