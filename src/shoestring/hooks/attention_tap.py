"""See what the attention function sees (post-RoPE q, all keys, the mask) without eager attention.

Every modern HF attention module calls ``ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager)`` on
each forward. While a tap is active we put a thin wrapper under that name in the interface's local
mapping: it calls the original function (sdpa, flash, eager: whatever the model uses) and, for the
tapped modules only, hands q, k and the mask to the callbacks, which may recompute the pattern for
those layers alone. The wrapper is removed when the last tap goes, restoring the mapping exactly.
"""

from __future__ import annotations

import sys
from typing import Callable

import torch

_MISSING = object()
_taps: dict[int, list[Callable]] = {}  # id(attention module) -> callbacks
_installed: dict[str, object] = {}  # impl name -> the local mapping entry it replaced
_count: dict[str, int] = {}


def _interface():
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # lazy: keeps `import shoestring` light

    return ALL_ATTENTION_FUNCTIONS


def _original(impl: str, module) -> Callable:
    prev = _installed.get(impl, _MISSING)
    if prev is not _MISSING and prev is not None:
        return prev
    if impl == "eager":
        return sys.modules[type(module).__module__].eager_attention_forward
    return type(_interface())._global_mapping[impl]


def _make_wrapper(impl: str) -> Callable:
    def tapped_attention(module, query, key, value, attention_mask, *args, **kwargs):
        out = _original(impl, module)(module, query, key, value, attention_mask, *args, **kwargs)
        for cb in _taps.get(id(module), ()):
            cb(module, query, key, attention_mask, kwargs, out)
        return out

    tapped_attention._shoestring_tap = True
    return tapped_attention


def add_tap(module, impl: str, callback: Callable) -> Callable[[], None]:
    """Call ``callback(module, q, k, mask, kwargs, output)`` on each attention call of ``module``.

    Returns a function that removes the tap.
    """
    mapping = _interface()._local_mapping
    if _count.get(impl, 0) == 0:
        _installed[impl] = mapping.get(impl, None)
        mapping[impl] = _make_wrapper(impl)
    _count[impl] = _count.get(impl, 0) + 1
    _taps.setdefault(id(module), []).append(callback)

    def remove():
        cbs = _taps.get(id(module), [])
        if callback in cbs:
            cbs.remove(callback)
            if not cbs:
                del _taps[id(module)]
            _count[impl] -= 1
            if _count[impl] == 0:
                prev = _installed.pop(impl)
                if prev is None:
                    mapping.pop(impl, None)
                else:
                    mapping[impl] = prev

    return remove


def pattern_from_qk(module, query, key, mask, kwargs) -> torch.Tensor:
    """Softmax attention weights ``[batch, head, query, key]`` from post-RoPE q and k.

    Follows the eager formula of transformers (scaling, optional tanh soft-capping as in Gemma 2,
    additive or boolean mask; causal and sliding-window when the sdpa path passed no mask).
    """
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # GQA: each key head serves `groups` query heads
        key = key.repeat_interleave(groups, dim=1)
    scaling = kwargs.get("scaling") or getattr(module, "scaling", None) or query.shape[-1] ** -0.5
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling
    softcap = kwargs.get("softcap")
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    q_len, k_len = scores.shape[-2:]
    if mask is None or mask.ndim == 2:
        # sdpa's causal fast path passes no mask; flash attention passes a 2-D [batch, key] padding mask
        qpos = torch.arange(k_len - q_len, k_len, device=scores.device)[:, None]
        kpos = torch.arange(k_len, device=scores.device)[None, :]
        keep = kpos <= qpos
        window = kwargs.get("sliding_window")
        if window:
            keep &= kpos > qpos - window
        if mask is not None:
            keep = keep & mask[:, None, None, -k_len:].bool()
        scores = scores.masked_fill(~keep, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask[..., :k_len], float("-inf"))
    else:
        scores = scores + mask[..., :k_len].float()
    pattern = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(pattern, nan=0.0).to(query.dtype)  # fully masked rows (padding) -> 0
