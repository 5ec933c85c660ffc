"""Full cache: the baseline that keeps everything (``keep`` is never asked to drop)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class Full(Policy):
    name = "full"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        return torch.ones(keys.shape[:3], device=keys.device)
