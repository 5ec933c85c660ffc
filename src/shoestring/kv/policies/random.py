"""Random eviction: the control every other policy must beat (seeded, so runs repeat)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class Random(Policy):
    seed: int = 0
    name = "random"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + layer * 1_009 + int(info.get("step", 0)))
        return torch.rand(keys.shape[:3], generator=g).to(keys.device)
