"""Attention-entropy head scores: a head whose attention rows are close to uniform over the keys it may see
mixes everything and carries little that is specific; a focused head (low entropy) does something particular.
Attention entropy as a head diagnostic follows Clark et al. 2019 (https://arxiv.org/abs/1906.04341); the
"confident heads matter" observation is Voita et al. 2019 (https://arxiv.org/abs/1905.09418).

Score of a query head = mean over calibration queries of ``1 - H(row) / log(keys seen)`` (1: all weight on
one key, 0: uniform); a key-value group's score is the sum over its query heads. Rows of the first query
(one key, entropy 0 by definition) are left out. Heads only: it gives no channel scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from ...hooks.attention_tap import add_tap, pattern_from_qk
from .base import blocks_and_shape


@dataclass
class AttentionEntropy:
    """Focus per head from the attention pattern, recomputed one layer at a time from the post-RoPE q and k
    the model's own attention function sees (sdpa stays on; the pattern is never kept whole)."""

    needs_data = True
    heads_only = True  # no MLP channel scores

    @torch.no_grad()
    def score(self, model, batches) -> dict:
        blocks, d, G, r = blocks_and_shape(model)
        impl = model.config._attn_implementation or "eager"
        sums = [torch.zeros(G * r) for _ in blocks]
        count = [0]

        def tap(i):
            def fn(module, query, key, mask, kwargs, _out):
                p = pattern_from_qk(module, query, key, mask, kwargs)[..., 1:, :]  # [B, H, T-1, T]
                T = p.shape[-1]
                seen = torch.arange(2, T + 1, dtype=torch.float).log()  # keys visible to query t (causal)
                h = -(p * p.clamp_min(1e-12).log()).sum(-1)  # [B, H, T-1]
                sums[i] += (1 - h / seen).sum((0, 2))
                if i == 0:
                    count[0] += p.shape[0] * p.shape[2]
            return fn
        removes = [add_tap(b.self_attn, impl, tap(i)) for i, b in enumerate(blocks)]
        try:
            for ids in batches:
                if ids.shape[-1] < 2:
                    raise ShoestringError("attention entropy needs contexts of at least 2 tokens", "raise --length")
                model(input_ids=ids, use_cache=False)
        finally:
            for rm in removes:
                rm()
        if not count[0]:
            raise ShoestringError("attention-entropy importance needs calibration text, and none was given",
                                  "pass calibration batches")
        heads = {i: s / count[0] for i, s in enumerate(sums)}
        return {"kv_groups": {i: h.view(G, r).sum(1) for i, h in heads.items()}, "channels": {}, "heads": heads}


