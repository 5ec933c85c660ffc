"""StreamingLLM: the first ``sinks`` tokens (attention sinks) plus the most recent ones.

Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks", https://arxiv.org/abs/2309.17453.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class StreamingLLM(Policy):
    """Keep the ``sinks`` first tokens and the newest ones.

    Parameters
    ----------
    sinks : int
        How many of the first tokens (by true position) are always kept.

    Notes
    -----
    kvpress 0.5.2 ``StreamingLLMPress(n_sink=4)`` keeps the same tokens (``StreamingLLM(sinks=4)``); like
    here, the kept keys keep their original RoPE positions (no re-rotation).
    """

    sinks: int = 4
    name = "streaming"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        p = positions.to(keys.device).float()  # [batch, kv_heads, T]
        return torch.where(p < self.sinks, 1e12 - p, p)  # sinks above every recent token, then newest first
