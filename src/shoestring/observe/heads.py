"""The attention-head census: which heads attend to the previous token, to duplicates, to the token
after an earlier copy of the current one (induction), to the first token (sink), or locally.

Induction and duplicate-token scores use repeated random tokens, as in Olsson et al., "In-context
Learning and Induction Heads" (2022), https://arxiv.org/abs/2209.11895 : a sequence of ``n`` random
tokens is repeated, and in the second half the induction target of position ``i`` is ``i - n + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShoestringError

SCORES = ("previous_token", "duplicate_token", "induction", "sink", "local")


@dataclass
class HeadScores:
    """``scores[name]``: ``[n_layers, n_heads]`` mean attention weight on the score's target."""

    scores: dict[str, torch.Tensor]
    seq_len: int
    batch: int

    def top(self, name: str, k: int = 5) -> list[dict]:
        if name not in self.scores:
            raise ShoestringError(f"unknown head score '{name}'", f"use one of {', '.join(SCORES)}")
        s = self.scores[name]
        v, i = s.flatten().topk(min(k, s.numel()))
        return [{"layer": int(j) // s.shape[1], "head": int(j) % s.shape[1], "score": round(float(x), 4)}
                for x, j in zip(v, i)]


@torch.no_grad()
def head_census(lm, *, seq_len: int = 32, batch: int = 4, seed: int = 0, window: int = 3,
                layers: list[int] | None = None) -> HeadScores:
    """Score every head on ``batch`` sequences of BOS + ``seq_len`` random tokens repeated twice."""
    g = torch.Generator().manual_seed(seed)
    vocab = lm.anatomy.d_vocab
    low = min(1000, vocab // 4)  # skip the first ids: often special or byte tokens
    rand = torch.randint(low, vocab, (batch, seq_len), generator=g)
    bos = lm.tokenizer.bos_token_id if lm.tokenizer is not None and lm.tokenizer.bos_token_id is not None else None
    parts = ([torch.full((batch, 1), bos)] if bos is not None else []) + [rand, rand]
    ids = torch.cat(parts, dim=1).to(lm.device)
    off = 1 if bos is not None else 0
    layers = list(range(lm.n_layers)) if layers is None else layers
    names = [f"blocks.{L}.attn.hook_pattern" for L in layers]
    _, acts = lm.run_with_cache(ids, names)
    T = ids.shape[1]
    q = torch.arange(T)
    second = q >= off + seq_len  # queries in the repeated half
    scores = {k: [] for k in SCORES}
    for n in names:
        p = acts[n].float().mean(0)  # [head, q, k], mean over the batch
        prev = p[:, q[1:], q[1:] - 1].mean(-1)
        dup = p[:, q[second], q[second] - seq_len].mean(-1)
        ind = p[:, q[second], q[second] - seq_len + 1].mean(-1)
        sink = p[:, 1:, 0].mean(-1)
        local = torch.stack([p[:, t, max(0, t - window + 1) : t + 1].sum(-1) for t in range(T)], -1).mean(-1)
        for k, v in zip(SCORES, (prev, dup, ind, sink, local)):
            scores[k].append(v)
    return HeadScores({k: torch.stack(v) for k, v in scores.items()}, seq_len, batch)


@torch.no_grad()
def attention_pattern(lm, prompt: str, layer: int, head: int) -> tuple[list[str], torch.Tensor]:
    """One head's attention on ``prompt``: ``(tokens, pattern [query, key])``; only that layer's pattern
    is computed."""
    name = f"blocks.{layer}.attn.hook_pattern"
    lm.resolve(name)  # layer range, with the usual message
    if not 0 <= head < lm.anatomy.n_heads:
        raise ShoestringError(f"head {head} is out of range",
                              f"layer {layer} has {lm.anatomy.n_heads} heads: 0 to {lm.anatomy.n_heads - 1}")
    enc = lm.tokenize(prompt)
    _, acts = lm.run_with_cache(enc, [name])
    tokens = [lm.tokenizer.decode([int(t)]) for t in enc["input_ids"][0]]
    return tokens, acts[name][0, head].float().cpu()
