"""StreamingLLM: the first ``sinks`` tokens (attention sinks) plus the most recent ones.

Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks", https://arxiv.org/abs/2309.17453.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class StreamingLLM(Policy):
    sinks: int = 4
    name = "streaming"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        p = positions.to(keys.device).float()  # [batch, kv_heads, T]
        return torch.where(p < self.sinks, 1e12 - p, p)  # sinks above every recent token, then newest first
