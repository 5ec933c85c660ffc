"""First-order Taylor importance: ``sum |w * dL/dw|`` over the weights a structure owns, the loss being the
language-model loss on the calibration text (the element-wise first-order term of LLM-Pruner, Ma et al. 2023,
https://arxiv.org/abs/2305.11627).

Memory stays near one layer's worth beyond the weights: each weight's gradient is reduced to per-row (or
per-column) sums the moment backward has produced it and then freed, and (by default) each block's
activations are recomputed during backward instead of being kept for all layers at once.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from torch.utils.checkpoint import checkpoint

from ...errors import ShoestringError
from .base import blocks_and_shape, group_sums

# (module path inside a block, sum over dim): rows of q/k/v/gate/up (dim 1), columns of o/down (dim 0)
_PARTS = (("self_attn.q_proj", 1), ("self_attn.k_proj", 1), ("self_attn.v_proj", 1), ("self_attn.o_proj", 0),
          ("mlp.gate_proj", 1), ("mlp.up_proj", 1), ("mlp.down_proj", 0))


@contextmanager
def recompute_blocks(blocks):
    """Activation checkpointing per block for the duration: each block's forward runs under
    ``torch.utils.checkpoint`` (non-reentrant), so backward keeps one block's activations at a time."""
    for b in blocks:
        b.forward = (lambda f: lambda *a, **k: checkpoint(f, *a, use_reentrant=False, **k))(b.forward)
    try:
        yield
    finally:
        for b in blocks:
            del b.forward  # the instance attribute goes; the class's forward is back


@dataclass
class Taylor:
    """Accumulates ``|w * grad|`` over calibration batches (one backward each), summed per structure.

    Parameters
    ----------
    recompute
        Recompute each block's activations in backward (less memory, about one more forward of time).
    """

    recompute: bool = True
    needs_data = True

    def score(self, model, batches) -> dict:
        blocks, d, G, r = blocks_and_shape(model)
        sums: dict = {}
        handles, was = [], [p.requires_grad for p in model.parameters()]

        def reduce(key, dim):
            def fn(p):
                s = (p.detach() * p.grad).abs().sum(dim).float()
                sums[key] = s if key not in sums else sums[key] + s
                p.grad = None  # freed now, not at the end of backward
            return fn
        n = 0
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            for i, b in enumerate(blocks):
                for path, dim in _PARTS:
                    w = b.get_submodule(path).weight
                    w.requires_grad_(True)
                    handles.append(w.register_post_accumulate_grad_hook(reduce((i, path), dim)))
            with recompute_blocks(blocks) if self.recompute else _nothing():
                for ids in batches:
                    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
                    n += 1
        finally:
            for h in handles:
                h.remove()
            for p, w in zip(model.parameters(), was):
                p.requires_grad_(w)
                p.grad = None
        if not n:
            raise ShoestringError("Taylor importance needs calibration text, and none was given", "pass calibration batches")
        out = {"kv_groups": {}, "channels": {}}
        for i in range(len(blocks)):
            q, k, v, o, gate, up, down = (sums[(i, path)] for path, _ in _PARTS)
            out["kv_groups"][i] = group_sums(q, k, v, o, d, G, r)
            out["channels"][i] = gate + up + down
        return out


@contextmanager
def _nothing():
    yield
