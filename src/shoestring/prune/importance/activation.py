"""Mean activation: how strongly a structure fires on the calibration text. An MLP channel's score is the mean
``|h_j|`` of its down-projection input; a key-value group's is the mean L2 norm of its query heads' outputs
(the output projection's input). Domain-specific by construction: score on code and on prose separately."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from .base import blocks_and_shape


@dataclass
class Activation:
    needs_data = True

    @torch.no_grad()
    def score(self, model, batches) -> dict:
        blocks, d, G, r = blocks_and_shape(model)
        sums: dict = {}

        def hook(key):
            def fn(_mod, args):
                x = args[0].detach().float()
                x = x.reshape(-1, x.shape[-1])
                if key[1] == "o":  # [tokens, H * d] -> per group: mean over its heads of the head output norm
                    val = x.view(x.shape[0], G, r, d).norm(dim=-1).mean(-1).sum(0)
                else:
                    val = x.abs().sum(0)
                sums[key] = sums.get(key, 0) + val
            return fn
        handles = []
        for i, b in enumerate(blocks):
            handles += [b.self_attn.o_proj.register_forward_pre_hook(hook((i, "o"))),
                        b.mlp.down_proj.register_forward_pre_hook(hook((i, "down")))]
        n = 0
        try:
            for ids in batches:
                model(input_ids=ids)
                n += ids.numel()
        finally:
            for h in handles:
                h.remove()
        if not n:
            raise ShoestringError("activation importance needs calibration text, and none was given",
                                  "pass calibration batches")
        return {"kv_groups": {i: sums[(i, "o")] / n for i in range(len(blocks))},
                "channels": {i: sums[(i, "down")] / n for i in range(len(blocks))}}
