"""PyramidKV-style budgets: lower layers (broad attention) keep more, upper layers (focused) keep less,
linearly from ``top / bottom`` of the bottom layer's share.

Cai et al. 2024, "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling",
https://arxiv.org/abs/2406.02069.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Allocator


@dataclass
class Pyramid(Allocator):
    top: float = 0.2  # the top layer's share relative to the bottom layer's
    name = "pyramid"

    def weights(self, n_layers, info):
        if n_layers == 1:
            return [1.0]
        return [1.0 - (1.0 - self.top) * i / (n_layers - 1) for i in range(n_layers)]
