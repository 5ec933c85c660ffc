"""Entropy-based budgets: a layer whose attention is spread out (high entropy) needs more cached tokens
than one whose attention is concentrated on a few. The share of layer ``l`` is proportional to the mean
entropy of its attention rows (over heads and queries) in the step that triggers the first compression.

The idea follows CAKE (Qin et al. 2025, "CAKE: Cascading and Adaptive KV Cache Eviction with Layer
Preferences", https://arxiv.org/abs/2503.12491), which allocates by attention dispersion, and the
entropy-guided allocation of Kim et al. 2025 ("Entropy-Guided KV Caching"); the scoring of tokens stays
with the policy it is combined with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Allocator


def row_entropy(attn: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each attention row ``[..., T]`` (rows need not be normalised: grouped heads sum)."""
    p = attn.float() / attn.float().sum(-1, keepdim=True).clamp_min(1e-12)
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


@dataclass
class EntropyAllocator(Allocator):
    floor: float = 0.1  # every layer keeps at least this share of the mean (no layer starves)
    needs: tuple[str, ...] = ("attentions",)
    queries: int | None = 32  # the entropy of the newest 32 queries' rows (all rows cost T^2 per layer)
    name = "entropy"

    def weights(self, n_layers, info):
        ent = [float(row_entropy(info["attn"][i]).mean()) for i in range(n_layers)]
        mean = sum(ent) / len(ent)
        return [max(e, self.floor * mean) for e in ent]
