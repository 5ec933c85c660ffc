"""Memory plan: what a model, a batch and a set of hooks will cost, before anything runs.

Estimates (not measurements): weights from the parameter count; the peak of a forward pass from the
widest transient tensors of one block (the MLP's hidden activations, q/k/v, and, for eager attention,
the ``[batch, head, T, T]`` scores), plus the residual stream; the KV cache for generation; the
captured hooks; the store's size on disk. ``shoestring cache`` picks its batch size from this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass
class MemoryPlan:
    weights: int
    forward_peak: int  # activations alive at once during one forward pass (no grad)
    kv_cache: int  # for generation at this batch and length
    captured: int  # hooks kept in memory for one batch
    store_bytes_per_token: int
    store_total: int | None  # for ``tokens`` tokens, if given

    @property
    def total(self) -> int:
        return self.weights + self.forward_peak + self.captured

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def plan(lm, batch: int, seq: int, hooks: list[str] | None = None, tokens: int | None = None,
         store_dtype: str = "float16") -> MemoryPlan:
    """Estimate memory for ``batch x seq`` tokens through ``lm`` (see module docstring)."""
    from ..store.writer import bytes_per_token

    a = lm.anatomy
    elem = torch.empty((), dtype=lm.dtype).element_size()
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    bt = batch * seq
    d_mlp = a.d_mlp or 4 * a.d_model
    gated = 3 if a.layout.name not in ("gpt2", "gpt_neox", "gptj", "opt", "phi") else 2
    per_block = bt * (4 * a.d_model + gated * d_mlp + (a.n_heads + 2 * a.n_kv_heads) * a.d_head * 2)
    if lm.model.config._attn_implementation == "eager":
        per_block += batch * a.n_heads * seq * seq
    logits = bt * a.d_vocab
    forward_peak = elem * (per_block + max(logits, 0))
    kv = 2 * a.n_layers * a.n_kv_heads * a.d_head * bt * elem
    widths = {}
    if hooks:
        shapes = lm.point_shapes(batch=1, pos=2)
        for spec in lm.resolve(hooks):
            widths[spec.name] = int(torch.tensor(shapes[spec.name][2:]).prod()) if spec.pos_dim == 1 else a.n_heads * seq
    captured = elem * bt * sum(widths.values())
    per_token = bytes_per_token(widths, store_dtype) if widths else 0
    return MemoryPlan(weights, forward_peak, kv, captured, per_token, per_token * tokens if tokens else None)


def auto_batch_size(lm, seq: int, hooks: list[str], free_bytes: int, cap: int = 64) -> int:
    """The largest batch (power of two, at most ``cap``) whose forward peak and captures fit in a
    quarter of ``free_bytes``; on the CPU larger batches buy little, so the cap is lower there."""
    if lm.device.type == "cpu":
        cap = min(cap, 8)
    one = plan(lm, 1, seq, hooks)
    per_seq = one.forward_peak + one.captured
    batch = 1
    while batch * 2 <= cap and (batch * 2) * per_seq <= free_bytes // 4:
        batch *= 2
    return batch
