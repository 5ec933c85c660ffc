"""Wanda, structured: |weight| x the norm of the input feature it reads (Sun et al. 2023,
https://arxiv.org/abs/2306.11695), summed over the weights a key-value group or an MLP channel owns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from .base import blocks_and_shape, group_sums, input_norms


@dataclass
class Wanda:
    """Score of a structure = sum over its weights of ``|W_ij| * ||X_j||``, with ``||X_j||`` the L2 norm of
    input feature ``j`` over the calibration tokens (rows of q/k/v/gate/up read the block's normed hidden
    state; columns of o/down are weighted by the norms of their own inputs)."""

    needs_data = True

    @torch.no_grad()
    def score(self, model, batches) -> dict:
        blocks, d, G, r = blocks_and_shape(model)
        mods = {}
        for i, b in enumerate(blocks):
            mods.update({(i, "q"): b.self_attn.q_proj, (i, "o"): b.self_attn.o_proj,
                         (i, "gate"): b.mlp.gate_proj, (i, "down"): b.mlp.down_proj})
        n = 0
        with input_norms(mods) as sums:
            for ids in batches:
                model(input_ids=ids)
                n += ids.numel()
        if not n:
            raise ShoestringError("Wanda needs calibration text, and none was given", "pass calibration batches")
        norm = {k: v.sqrt() for k, v in sums.items()}
        out = {"kv_groups": {}, "channels": {}}
        for i, b in enumerate(blocks):
            a, m = b.self_attn, b.mlp
            xa, xo, xm, xd = norm[(i, "q")], norm[(i, "o")], norm[(i, "gate")], norm[(i, "down")]
            qkv = [(a.q_proj.weight.abs() * xa).sum(1), (a.k_proj.weight.abs() * xa).sum(1),
                   (a.v_proj.weight.abs() * xa).sum(1)]  # per output row
            o = (a.o_proj.weight.abs() * xo).sum(0)  # per input column
            out["kv_groups"][i] = group_sums(*qkv, o, d, G, r)
            out["channels"][i] = ((m.gate_proj.weight.abs() * xm).sum(1) + (m.up_proj.weight.abs() * xm).sum(1)
                                  + (m.down_proj.weight.abs() * xd).sum(0))
        return out
