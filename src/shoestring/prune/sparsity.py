"""Unstructured and N:M sparsity as the comparison point for structured pruning: weights are zeroed, not
removed, so quality can be compared at equal parameter counts while the model gets no smaller or faster
on dense kernels.

Scores are Wanda's ``|W_ij| * ||X_j||`` (Sun et al. 2023, https://arxiv.org/abs/2306.11695), compared within
each output row (unstructured) or within each group of ``m`` consecutive inputs (N:M, e.g. 2:4; Mishra et al.
2021, https://arxiv.org/abs/2104.08378). Without calibration batches the scores are plain magnitudes.
"""

from __future__ import annotations

import torch

from ..errors import ShoestringError
from ..models.anatomy.base import get_path
from .importance.base import blocks_and_shape, input_norms

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@torch.no_grad()
def sparsify(model, ratio: float = 0.5, pattern: str = "unstructured", batches=None) -> dict:
    """Zero ``ratio`` of each linear's weights in every block (``pattern="2:4"`` keeps 2 of every 4 inputs per
    row); returns ``{"zeroed": n, "of": total}`` over the weights it considered."""
    blocks = blocks_and_shape(model)[0]
    if pattern == "unstructured":
        if not 0.0 < ratio < 1.0:
            raise ShoestringError(f"sparsity ratio {ratio} is outside (0, 1)", "zero a share such as 0.5")
        n, m = None, None
    else:
        try:
            n, m = (int(x) for x in pattern.split(":"))
        except ValueError:
            raise ShoestringError(f"unknown sparsity pattern '{pattern}'", "use unstructured or N:M such as 2:4")
        if not 0 < n < m:
            raise ShoestringError(f"pattern {pattern} keeps {n} of {m}", "keep between 1 and M - 1, e.g. 2:4")
    mods = {(i, p): get_path(b, p) for i, b in enumerate(blocks) for p in LINEARS}
    norms = {}
    if batches:
        with input_norms(mods) as sums:
            for ids in batches:
                model(input_ids=ids)
        norms = {k: v.sqrt() for k, v in sums.items()}
    zeroed = total = 0
    for key, lin in mods.items():
        W = lin.weight
        score = W.abs().float() * (norms[key] if key in norms else 1.0)
        if m is None:
            k = int(W.shape[1] * ratio)
            drop = score.topk(k, dim=1, largest=False).indices
            mask = torch.ones_like(W, dtype=torch.bool).scatter_(1, drop, False)
        else:
            if W.shape[1] % m:
                raise ShoestringError(f"{lin} has {W.shape[1]} inputs, not a multiple of {m}", "pick another N:M")
            s = score.view(W.shape[0], -1, m)
            keep = s.topk(n, dim=-1).indices
            mask = torch.zeros_like(s, dtype=torch.bool).scatter_(-1, keep, True).view_as(W)
        W.mul_(mask)
        zeroed += int((~mask).sum())
        total += W.numel()
    return {"zeroed": zeroed, "of": total, "pattern": pattern}
