"""H2O: keep the "heavy hitters" (the tokens that have received the most attention so far) and the most
recent tokens, half of the budget each.

Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models",
https://arxiv.org/abs/2306.14048.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class H2O(Policy):
    recent_fraction: float = 0.5
    needs: tuple[str, ...] = ("attentions",)
    name = "h2o"
    accumulates = True

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        recent = int(info["budget"] * self.recent_fraction)
        newest = positions.float().topk(recent, dim=-1).values[..., -1:] if recent else None  # [b, h, 1]
        s = info["acc"].clone()
        if newest is not None:
            s = torch.where(positions.float() >= newest, float("inf"), s)
        return s
