"""Sliding window: keep the most recent tokens (the truncated-context baseline StreamingLLM is compared to)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class Window(Policy):
    name = "window"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        return positions.to(keys.device).float()  # [batch, kv_heads, T]: newer is higher
