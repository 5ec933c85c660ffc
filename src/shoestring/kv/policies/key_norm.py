"""Key norm: keep the tokens whose keys have the *smallest* L2 norm (low-norm keys draw high attention).

Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression",
https://arxiv.org/abs/2406.11430.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class KeyNorm(Policy):
    """Score = minus the L2 norm of each cached (post-RoPE) key, per key-value head.

    Notes
    -----
    The same scores as kvpress 0.5.2 ``KnormPress``.
    """

    name = "key_norm"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        return -keys.float().norm(dim=-1)
