"""Weight magnitude: the L2 norm of the weights a structure owns (no data needed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import blocks_and_shape, group_sums


@dataclass
class Magnitude:
    """Score = sum of squared weights of a key-value group (its q, k, v rows and o columns) or of an MLP
    channel (gate and up rows, down column), square-rooted."""

    needs_data = False

    @torch.no_grad()
    def score(self, model, batches=None) -> dict:
        blocks, d, G, r = blocks_and_shape(model)
        out = {"kv_groups": {}, "channels": {}}
        for i, b in enumerate(blocks):
            a, m = b.self_attn, b.mlp
            rows = [x.weight.pow(2).sum(1) for x in (a.q_proj, a.k_proj, a.v_proj)]
            out["kv_groups"][i] = group_sums(*rows, a.o_proj.weight.pow(2).sum(0), d, G, r).sqrt()
            out["channels"][i] = (m.gate_proj.weight.pow(2).sum(1) + m.up_proj.weight.pow(2).sum(1)
                                  + m.down_proj.weight.pow(2).sum(0)).sqrt()
        return out
