"""First-order Taylor importance: ``sum |w * dL/dw|`` over the weights a structure owns, the loss being the
language-model loss on the calibration text (the element-wise first-order term of LLM-Pruner, Ma et al. 2023,
https://arxiv.org/abs/2305.11627)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from .base import blocks_and_shape, group_sums


@dataclass
class Taylor:
    """Accumulates ``|w * grad|`` over calibration batches (one backward each), then sums it per structure."""

    needs_data = True

    def score(self, model, batches) -> dict:
        blocks, d, G, r = blocks_and_shape(model)
        params = [p for b in blocks for p in (b.self_attn.q_proj.weight, b.self_attn.k_proj.weight,
                                              b.self_attn.v_proj.weight, b.self_attn.o_proj.weight,
                                              b.mlp.gate_proj.weight, b.mlp.up_proj.weight, b.mlp.down_proj.weight)]
        acc = {id(p): torch.zeros_like(p, dtype=torch.float) for p in params}
        was = [p.requires_grad for p in model.parameters()]
        n = 0
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            for ids in batches:
                loss = model(input_ids=ids, labels=ids).loss
                grads = torch.autograd.grad(loss, params)
                for p, g in zip(params, grads):
                    acc[id(p)] += (p.detach() * g).abs().float()
                n += 1
        finally:
            for p, w in zip(model.parameters(), was):
                p.requires_grad_(w)
        if not n:
            raise ShoestringError("Taylor importance needs calibration text, and none was given", "pass calibration batches")
        out = {"kv_groups": {}, "channels": {}}
        for i, b in enumerate(blocks):
            a, m = b.self_attn, b.mlp
            q, k, v, o = (acc[id(x.weight)] for x in (a.q_proj, a.k_proj, a.v_proj, a.o_proj))
            out["kv_groups"][i] = group_sums(q.sum(1), k.sum(1), v.sum(1), o.sum(0), d, G, r)
            out["channels"][i] = (acc[id(m.gate_proj.weight)].sum(1) + acc[id(m.up_proj.weight)].sum(1)
                                  + acc[id(m.down_proj.weight)].sum(0))
        return out
