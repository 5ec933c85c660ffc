"""Shared plumbing of the importance criteria: the blocks and the attention shape, and input-norm capture."""

from __future__ import annotations

from contextlib import contextmanager


import torch

from ...errors import ShoestringError
from ...models.anatomy import detect
from ..surgery import group_rows


def blocks_and_shape(model):
    """``(blocks, head_dim, key-value heads, query heads per key-value head)`` of a llama-layout model."""
    anatomy = detect(model)
    if anatomy.layout.name != "llama":
        raise ShoestringError(f"structured importance supports the llama layout, not '{anatomy.layout.name}'",
                              "use a Llama-family model (SmolLM2, Mistral, Qwen2, Gemma, ...)")
    c = model.config
    H = c.num_attention_heads
    G = getattr(c, "num_key_value_heads", None) or H
    d = getattr(c, "head_dim", None) or c.hidden_size // H
    return anatomy.blocks, d, G, H // G


@contextmanager
def input_norms(modules: dict):
    """Accumulate, per named module, the sum of squares of each input feature over all tokens seen.

    Yields ``{name: tensor[in_features]}`` (filled as forwards run); the hooks are always removed."""
    sums = {name: None for name in modules}

    def hook(name):
        def fn(_mod, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            s = x.pow(2).sum(0)
            sums[name] = s if sums[name] is None else sums[name] + s
        return fn
    handles = [m.register_forward_pre_hook(hook(n)) for n, m in modules.items()]
    try:
        yield sums
    finally:
        for h in handles:
            h.remove()


def group_sums(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, d: int, G: int, r: int) -> torch.Tensor:
    """``[G]``: per key-value group, the sum of the per-row scores ``q``, ``k``, ``v`` (output rows of the
    projections) and the per-column scores ``o`` (input columns of the output projection) that it owns."""
    return torch.stack([q[group_rows([g], d, r)].sum() + k[group_rows([g], d)].sum() + v[group_rows([g], d)].sum()
                        + o[group_rows([g], d, r)].sum() for g in range(G)])
