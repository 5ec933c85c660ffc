"""SnapKV: the attention the last ``window`` queries (the observation window) pay to each token, pooled
over neighbouring tokens; the window itself is always kept.

Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before Generation",
https://arxiv.org/abs/2404.14469. Query-aware when the question ends the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Policy


@dataclass
class SnapKV(Policy):
    window: int = 32
    kernel: int = 7
    needs: tuple[str, ...] = ("attentions",)
    name = "snapkv"

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        a = info["attn"][:, :, -self.window:, :].sum(2)  # [batch, kv_heads, T]
        b, h, T = a.shape
        pooled = F.max_pool1d(a.reshape(b * h, 1, T), self.kernel, stride=1, padding=self.kernel // 2).reshape(b, h, T)
        newest = positions.float().max(dim=-1, keepdim=True).values
        return torch.where(positions.float() > newest - min(self.window, info["attn"].shape[2]), float("inf"), pooled)
