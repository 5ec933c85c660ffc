"""The base of every KV-cache policy: a scorer (which past tokens matter) and a budget (how many to keep).

A policy sees one layer's cache, ``keys`` and ``values`` ``[batch, kv_heads, T, head_dim]``, and returns
``scores [batch, kv_heads, T]``: higher is kept. :meth:`keep` turns scores into the indices to keep under a
budget of ``n`` tokens, always in their original order. Policies that need more than the cache (attention
weights, queries) say so with ``needs``; a policy is one small dataclass per file with one method to
override, :meth:`score` (the kvpress "press" idea, https://github.com/NVIDIA/kvpress, re-implemented here
on transformers' public ``Cache`` API).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Policy:
    name = "base"
    accumulates = False  # True: reads attention summed over every step (H2O), so every step computes rows
    needs: tuple[str, ...] = ()  # e.g. ("attentions",)

    def score(self, keys: torch.Tensor, values: torch.Tensor, *, positions: torch.Tensor, layer: int,
              info: dict) -> torch.Tensor:
        """``[batch, kv_heads, T]``: how much each cached token is worth keeping (higher: keep).
        ``info`` holds ``step``, ``budget`` (the tokens to keep) and, for ``needs = ("attentions",)``,
        ``attn`` / ``acc``."""
        raise NotImplementedError

    def attention_queries(self) -> int | None:
        """How many of the newest queries' attention rows ``info["attn"]`` must hold (``None``: every query
        of the step). Policies that read only an observation window say so, and the session computes
        only those rows."""
        return None

    def keep(self, keys: torch.Tensor, values: torch.Tensor, n: int, *, positions: torch.Tensor, layer: int,
             info: dict) -> torch.Tensor:
        """Indices ``[batch, kv_heads, n]`` (sorted) of the tokens to keep; every head keeps ``n``."""
        T = keys.shape[-2]
        if n >= T:
            return torch.arange(T, device=keys.device).expand(*keys.shape[:2], T)
        s = self.score(keys, values, positions=positions, layer=layer, info={**info, "budget": n})
        return s.topk(n, dim=-1).indices.sort(dim=-1).values
