"""The base of every budget allocator: how a total KV budget is shared between layers.

``allocate(budget, n_layers, info)`` returns one token budget per layer whose sum is ``budget * n_layers``
(each at least 1): the same memory as a uniform budget, spent differently. It is called once, at the first
compression, with ``info["attn"]`` (per layer ``[batch, kv_heads, q, T]``) when the policy reads attention.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Allocator:
    name = "base"
    needs: tuple[str, ...] = ()
    queries: int | None = None  # with needs = ("attentions",): rows of the newest queries read (None: all)

    def weights(self, n_layers: int, info: dict) -> list[float]:
        """Relative share of each layer (any positive numbers)."""
        raise NotImplementedError

    def allocate(self, budget: int, n_layers: int, info: dict) -> list[int]:
        w = [max(float(x), 1e-9) for x in self.weights(n_layers, info)]
        total = budget * n_layers
        raw = [total * x / sum(w) for x in w]
        out = [max(1, int(r)) for r in raw]
        order = sorted(range(n_layers), key=lambda i: raw[i] - int(raw[i]), reverse=True)
        i = 0
        while sum(out) < total:  # hand the rounding remainder to the largest fractional parts
            out[order[i % n_layers]] += 1
            i += 1
        while sum(out) > total:  # (only when the floor of 1 pushed the sum over)
            j = max(range(n_layers), key=lambda k: out[k])
            out[j] -= 1
        return out
