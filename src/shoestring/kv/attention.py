"""The session's view of attention: a per-layer causal mask and, where a policy reads attention, the rows
it needs, through transformers' public ``AttentionInterface`` (no patched model code).

Why a mask of its own: transformers builds *one* causal mask per forward from layer 0's cache length.
When layers keep different budgets (PyramidKV, entropy-based allocation), every other layer's keys have
another length, and ``sdpa`` would silently slice layer 0's mask to fit. During the session the
attention function of the model's implementation is wrapped: for a layer whose key length differs from
the mask's, the mask is rebuilt as "every cached token is visible, the chunk itself is causal" (the
chunk's keys are always the newest ones). Then the original function runs.

Rows for the policy: the softmax pattern of the last ``n`` queries of the step (``None``: all), from the
post-RoPE queries and keys the attention function receives, summed later over each key-value head's query
heads. SnapKV needs its observation window, TOVA one row, H2O every row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..hooks.attention_tap import pattern_from_qk


def _interface():
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS


def chunk_mask(mask: torch.Tensor, q_len: int, k_len: int) -> torch.Tensor:
    """A mask like ``mask`` (bool: True = attend; float: additive) for ``q_len`` new queries over ``k_len``
    keys whose last ``q_len`` are the queries' own: ``[batch, 1, q_len, k_len]``."""
    qpos = torch.arange(k_len - q_len, k_len, device=mask.device)[:, None]
    keep = torch.arange(k_len, device=mask.device)[None, :] <= qpos  # [q, k]
    keep = keep[None, None].expand(mask.shape[0], 1, q_len, k_len)
    if mask.dtype == torch.bool:
        return keep
    return torch.zeros(keep.shape, dtype=mask.dtype, device=mask.device).masked_fill(~keep, torch.finfo(mask.dtype).min)


@contextmanager
def session_attention(impl: str, rows: dict[int, int | None] | None, out: dict[int, torch.Tensor]) -> Iterator[None]:
    """While active, attention under ``impl`` gets per-layer masks, and for each layer index in ``rows`` the
    pattern of its last ``rows[layer]`` queries (``None``: all) lands in ``out[layer]``
    (``[batch, q_heads, n, T]``, float32)."""
    mapping = _interface()._local_mapping
    prev = mapping.get(impl)

    def inner(module):
        if prev is not None:
            return prev
        if impl == "eager":
            return sys.modules[type(module).__module__].eager_attention_forward
        return type(_interface())._global_mapping[impl]

    def kv_attention(module, query, key, value, attention_mask, *args, **kwargs):
        q_len, k_len = query.shape[2], key.shape[2]
        if attention_mask is not None and attention_mask.ndim == 4 and attention_mask.shape[-1] != k_len:
            attention_mask = chunk_mask(attention_mask, q_len, k_len)
        layer = getattr(module, "layer_idx", None)
        if rows is not None and layer in rows:
            n = q_len if rows[layer] is None else min(rows[layer], q_len)
            m = attention_mask[..., -n:, :] if attention_mask is not None and attention_mask.ndim == 4 else attention_mask
            out[layer] = pattern_from_qk(module, query[:, :, -n:], key, m, kwargs).float()
        return inner(module)(module, query, key, value, attention_mask, *args, **kwargs)

    mapping[impl] = kv_attention
    try:
        yield
    finally:
        if prev is None:
            mapping.pop(impl, None)
        else:
            mapping[impl] = prev
