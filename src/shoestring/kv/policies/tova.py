"""TOVA: keep the tokens the current (last) query attends to most.

Oren et al. 2024, "Transformers are Multi-State RNNs", https://arxiv.org/abs/2401.06104.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Policy


@dataclass
class TOVA(Policy):
    """Score = attention of the newest query to each cached token.

    Parameters
    ----------
    heads : {"kv", "all"}
        ``"kv"``: each key-value head keeps its own tokens, scored by the attention summed over its query
        heads; ``"all"``: averaged over every head of the layer, so all heads keep the same tokens.
    keep_last : bool
        Always keep the newest token (rather than scoring its attention to itself).

    Notes
    -----
    kvpress 0.5.2 ``TOVAPress`` (reviewed by a TOVA author, after the official code) is
    ``TOVA(heads="all", keep_last=True)``: the last query's attention averaged over all heads, the same
    tokens for every key-value head, and the last token kept with the largest score.
    """

    heads: str = "kv"
    keep_last: bool = False
    needs: tuple[str, ...] = ("attentions",)
    name = "tova"

    def __post_init__(self):
        if self.heads not in ("kv", "all"):
            raise ValueError(f"heads must be 'kv' or 'all', not {self.heads!r}")

    def attention_queries(self) -> int:
        return 1

    def score(self, keys, values, *, positions, layer, info):
        s = info["attn"][:, :, -1, :]  # [batch, kv_heads, T]
        if self.heads == "all":
            s = s.mean(1, keepdim=True).expand_as(s)
        if self.keep_last:
            p = positions.to(s.device)
            s = torch.where(p == p.max(dim=-1, keepdim=True).values, float("inf"), s)
        return s
