"""Ablation effect: mean-ablate one key-value group or one block of MLP channels and measure how much the
language-model loss on the calibration text rises. Run it on each domain's text to get a per-domain importance
(a head's importance for code and for prose are then two numbers; combine them with
:func:`~shoestring.prune.select.contrast_scores`).

One forward pass over the calibration batches per structure: ``layers x (groups + channel_blocks)`` passes,
the costly criterion; ``channel_blocks`` sets the resolution for channels (each channel gets its block's score).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from ..surgery import group_rows
from .base import blocks_and_shape


@dataclass
class Ablation:
    channel_blocks: int = 16
    needs_data = True

    @torch.no_grad()
    def score(self, model, batches) -> dict:
        blocks, d, G, r = blocks_and_shape(model)
        if not batches:
            raise ShoestringError("ablation needs calibration text, and none was given", "pass calibration batches")
        means: dict = {}

        def collect(key):
            def fn(_m, args):
                x = args[0].detach().float().reshape(-1, args[0].shape[-1])
                s, n = means.get(key, (0, 0))
                means[key] = (s + x.sum(0), n + x.shape[0])
            return fn
        handles = [h for i, b in enumerate(blocks) for h in (
            b.self_attn.o_proj.register_forward_pre_hook(collect((i, "o"))),
            b.mlp.down_proj.register_forward_pre_hook(collect((i, "down"))))]
        try:
            base = self._loss(model, batches)
        finally:
            for h in handles:
                h.remove()
        mean = {k: (s / n) for k, (s, n) in means.items()}
        out = {"kv_groups": {}, "channels": {}}
        for i, b in enumerate(blocks):
            groups = []
            for g in range(G):
                cols = group_rows([g], d, r)
                groups.append(self._ablated(model, batches, b.self_attn.o_proj, cols, mean[(i, "o")][cols]) - base)
            out["kv_groups"][i] = torch.tensor(groups)
            width = b.mlp.down_proj.in_features
            edges = torch.linspace(0, width, min(self.channel_blocks, width) + 1).long()
            per = torch.empty(width)
            for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
                cols = torch.arange(lo, hi)
                per[lo:hi] = self._ablated(model, batches, b.mlp.down_proj, cols, mean[(i, "down")][cols]) - base
            out["channels"][i] = per
        return out

    @staticmethod
    def _loss(model, batches) -> float:
        return sum(float(model(input_ids=ids, labels=ids).loss) for ids in batches) / len(batches)

    def _ablated(self, model, batches, module, cols, value) -> float:
        def fn(_m, args):
            x = args[0].clone()
            x[..., cols] = value.to(x.dtype)
            return (x,) + tuple(args[1:])
        h = module.register_forward_pre_hook(fn)
        try:
            return self._loss(model, batches)
        finally:
            h.remove()
