"""SnapKV: the attention the last ``window`` queries (the observation window) pay to each earlier token,
pooled over neighbouring tokens; the window itself is always kept.

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
    """Score = attention from the observation window, summed over the window's queries and over each
    key-value head's query heads, then pooled along the keys.

    Parameters
    ----------
    window : int
        Observation window: the newest ``window`` queries score, and their own tokens are always kept.
    kernel : int
        Width of the pooling along the keys (odd; same length out).
    pool : {"max", "avg"}
        ``"max"`` (the paper's LongBench setting) or ``"avg"`` (zero-padded at the edges, as
        ``F.avg_pool1d`` with ``count_include_pad``).

    Notes
    -----
    The window's own keys are left out of the pooling (their attention counts as zero there), as in the
    paper's code and kvpress, so the window's large self-attention does not lift its neighbours.
    kvpress 0.5.2 ``SnapKVPress`` is ``SnapKV(window=64, kernel=5, pool="avg")``: it averages over the
    window's queries, pools each query head, then averages over the key-value group, which ranks tokens
    exactly like the sum here (pooling is linear); it keeps the window by giving it the largest score.
    """

    window: int = 32
    kernel: int = 7
    pool: str = "max"
    needs: tuple[str, ...] = ("attentions",)
    name = "snapkv"

    def __post_init__(self):
        if self.pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', not {self.pool!r}")

    def attention_queries(self) -> int:
        return self.window

    def score(self, keys, values, *, positions, layer, info) -> torch.Tensor:
        a = info["attn"][:, :, -self.window:, :].sum(2)  # [batch, kv_heads, T]
        b, h, T = a.shape
        newest = positions.float().max(dim=-1, keepdim=True).values
        in_window = positions.float() > newest - min(self.window, info["attn"].shape[2])
        a = a.masked_fill(in_window, 0.0).reshape(b * h, 1, T)
        pool = F.max_pool1d if self.pool == "max" else F.avg_pool1d
        pooled = pool(a, self.kernel, stride=1, padding=self.kernel // 2).reshape(b, h, T)
        return torch.where(in_window, float("inf"), pooled)
