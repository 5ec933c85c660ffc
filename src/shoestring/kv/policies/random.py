"""Random eviction: the control every other policy must beat (seeded, so runs repeat)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class Random(Policy):
    """Uniform random scores from a seeded ``torch.Generator``.

    Parameters
    ----------
    seed : int
        The seed of the draws.
    per_layer : bool
        ``True``: every layer and step draws from its own seed (derived from ``seed``), so layers drop
        independent tokens. ``False``: the generator is reseeded with ``seed`` for every call, so layers
        with the same cache shape drop the same tokens, as kvpress 0.5.2 ``RandomPress(seed=seed)`` does
        (which draws ``torch.rand(batch, kv_heads, T)`` the same way: same seed, same indices).
    """

    seed: int = 0
    per_layer: bool = True
    name = "random"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        seed = self.seed * 100_003 + layer * 1_009 + int(info.get("step", 0)) if self.per_layer else self.seed
        g = torch.Generator().manual_seed(seed)
        return torch.rand(keys.shape[:3], generator=g).to(keys.device)
