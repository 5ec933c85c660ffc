"""Entropy-weighted attention: the attention the newest ``window`` queries pay to each token, each query's row
weighted by how *focused* it is (one minus its entropy over the log of the keys it sees), so a token that a
sharp query picks out outranks one that a diffuse query brushes; the window itself is always kept.

Token scoring by attention entropy follows the entropy-guided line of work: "Entropy-Guided KV Caching"
(Kim et al. 2025), EntroKV, and CAKE (Qin et al. 2025, https://arxiv.org/abs/2503.12491), which uses
attention dispersion to decide what and how much to keep. This is our formulation of that idea on the
session's attention rows, stated here so results can name it; pair it with
:class:`~shoestring.kv.allocators.EntropyAllocator` (the ``entropy`` preset) for per-layer budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class Entropy(Policy):
    window: int = 32
    needs: tuple[str, ...] = ("attentions",)
    name = "entropy"

    def attention_queries(self) -> int:
        return self.window

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        a = info["attn"][:, :, -self.window:, :].float()  # [batch, kv_heads, w, T] (grouped heads summed)
        p = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        ent = -(p * p.clamp_min(1e-12).log()).sum(-1, keepdim=True)  # [batch, kv_heads, w, 1]
        seen = (a > 0).sum(-1, keepdim=True).clamp_min(2).float()  # keys each query could see
        focus = (1 - ent / seen.log()).clamp_min(0)
        s = (focus * p).sum(2)  # [batch, kv_heads, T]
        newest = positions.float().max(dim=-1, keepdim=True).values
        return torch.where(positions.float() > newest - min(self.window, a.shape[2]), float("inf"), s)
