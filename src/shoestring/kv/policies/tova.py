"""TOVA: keep the tokens the current (last) query attends to most, summed over each key-value group.

Oren et al. 2024, "Transformers are Multi-State RNNs", https://arxiv.org/abs/2401.06104.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Policy


@dataclass
class TOVA(Policy):
    needs: tuple[str, ...] = ("attentions",)
    name = "tova"

    def score(self, keys, values, *, positions, layer, info):
        return info["attn"][:, :, -1, :]  # [batch, kv_heads, T]
