"""KV-cache quantisation to int8 or int4: a second axis, next to eviction, for shrinking the cache.

Every cached token's key (and value) vector is cut into groups of ``group`` channels along ``head_dim``; each
group is stored as unsigned ``bits``-bit codes with its own float16 ``scale`` and ``zero`` (asymmetric,
min-max), ``x ~ code * scale + zero``. int4 codes are packed two per byte, so int4 really holds half the
bytes of int8. This is the fine-grained group-wise asymmetric scheme of FlexGen (Sheng et al. 2023,
https://arxiv.org/abs/2303.06865), applied per token to both keys and values.

KIVI (Liu et al. 2024, https://arxiv.org/abs/2402.02750) quantises keys per *channel* (groups that span
tokens) and keeps the newest ``R`` tokens in float; at 2 bits its per-channel keys matter. Per-token groups
are kept here because a token's codes then depend on that token alone: it is quantised once, on arrival,
and never again, and eviction simply gathers the codes of the kept tokens. KIVI's float ``residual`` is
offered (default 0): the newest ``residual`` tokens stay unquantised until newer ones push them out. An
eviction (:meth:`QuantizedLayer.gather`) quantises the residual first, so under a budget that evicts at
every step the residual holds only the current step's tokens.

    >>> cache = quantize_cache(DynamicCache(config=model.config), bits=4)      # doctest: +SKIP
    >>> model(ids, past_key_values=cache)                                      # doctest: +SKIP
    >>> cache_nbytes(cache)                   # the bytes really held             # doctest: +SKIP

A :class:`QuantizedLayer` keeps transformers' ``DynamicLayer`` interface: ``update`` returns float keys and
values for attention (the step's own tokens unquantised), and ``keys`` / ``values`` read as dequantised
float tensors ``[batch, kv_heads, T, head_dim]`` and quantise what is assigned to them.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from ..errors import ShoestringError

BITS = (4, 8)


def _round_fp16(x: torch.Tensor, up: bool) -> torch.Tensor:
    """``x`` (float32) as float16, rounded toward +inf (``up``) or -inf, so that the bound below holds."""
    h = x.half()
    worse = h.float() < x if up else h.float() > x
    return torch.where(worse, torch.nextafter(h, torch.full_like(h, float("inf") if up else float("-inf"))), h)


def quantize(x: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x [..., d]`` -> ``codes`` uint8 ``[..., d * bits / 8]``, ``scale`` and ``zero`` float16 ``[..., d / group]``.

    ``zero`` is the group minimum rounded down to float16 and ``scale`` the range over ``2**bits - 1``
    rounded up, so no code is clipped and ``|x - dequantize(...)| <= scale / 2`` (float32 arithmetic aside)."""
    top = 2 ** bits - 1
    g = x.float().unflatten(-1, (-1, group))  # [..., d / group, group]
    zero = _round_fp16(g.amin(-1), up=False)  # [..., d / group]
    scale = _round_fp16((g.amax(-1) - zero.float()) / top, up=True)
    div = torch.where(scale > 0, scale.float(), torch.ones_like(scale, dtype=torch.float32))
    codes = ((g - zero.float()[..., None]) / div[..., None]).round_().clamp_(0, top).to(torch.uint8).flatten(-2)
    if bits == 4:  # two codes a byte: channel 2i in the low nibble, 2i + 1 in the high one
        codes = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return codes, scale, zero


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The inverse of :func:`quantize`: ``[..., d]`` in ``dtype``."""
    if bits == 4:
        codes = torch.stack([codes & 15, codes >> 4], dim=-1).flatten(-2)  # [..., d]
    g = codes.float().unflatten(-1, (scale.shape[-1], -1))  # [..., d / group, group]
    return (g * scale.float()[..., None] + zero.float()[..., None]).flatten(-2).to(dtype)


def _tensor_bytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


class QuantizedLayer(DynamicLayer):
    """A full-attention cache layer holding keys and values as ``bits``-bit codes (see the module notes).

    Per kind (``"k"``, ``"v"``) it stores ``[codes, scale, zero, residual]``, all with tokens on dim 2:
    codes ``[batch, kv_heads, Tq, head_dim * bits / 8]``, scale / zero ``[batch, kv_heads, Tq, head_dim / group]``
    and the float residual ``[batch, kv_heads, Tr, head_dim]`` (the newest ``Tr <= residual`` tokens)."""

    def __init__(self, bits: int = 8, group: int = 32, residual: int = 0):
        if bits not in BITS:
            raise ShoestringError(f"KV quantisation to {bits} bits is not supported", "use bits=8 or bits=4")
        if int(group) < 1 or int(residual) < 0:
            raise ShoestringError(f"group {group} / residual {residual} out of range",
                                  "give a positive group (e.g. 32) and a residual >= 0 tokens")
        self.bits, self.group, self.residual = int(bits), int(group), int(residual)
        self._s: dict[str, list[torch.Tensor] | None] = {"k": None, "v": None}
        super().__init__()  # sets keys / values to None through the setters below

    def __repr__(self):
        return f"QuantizedLayer(bits={self.bits}, group={self.group}, residual={self.residual})"

    def _group(self, d: int) -> int:
        g = min(self.group, d)  # a head smaller than the group is one group
        if d % g or (self.bits == 4 and d % 2):
            raise ShoestringError(f"a group of {g} channels does not divide head_dim {d}" + (" into an even number of "
                                  "channels" if not d % g else ""), f"pick a group that divides {d} (e.g. {d})")
        return g

    def _store(self, kind: str, x: torch.Tensor | None) -> None:
        """Replace one kind's contents with ``x [batch, kv_heads, T, d]``: all but the newest ``residual`` quantised."""
        if x is None:
            self._s[kind] = None
            return
        cut = max(x.shape[-2] - self.residual, 0)
        # .clone(): a view would keep the caller's whole float tensor alive
        self._s[kind] = [*quantize(x[..., :cut, :], self.bits, self._group(x.shape[-1])), x[..., cut:, :].clone()]

    def _read(self, kind: str) -> torch.Tensor | None:
        s = self._s[kind]
        if s is None:
            return None
        return torch.cat([dequantize(*s[:3], self.bits, s[3].dtype), s[3]], dim=-2)  # [batch, kv_heads, T, d]

    keys = property(lambda self: self._read("k"), lambda self, x: self._store("k", x))
    values = property(lambda self: self._read("v"), lambda self, x: self._store("v", x))

    def _append(self, kind: str, new: torch.Tensor) -> None:
        codes, scale, zero, res = self._s[kind]
        res = torch.cat([res, new], dim=-2)
        out = res.shape[-2] - self.residual  # the oldest residual tokens, quantised now, once
        if out > 0:
            q = quantize(res[..., :out, :], self.bits, self._group(res.shape[-1]))
            codes, scale, zero = (torch.cat([a, b], dim=-2) for a, b in zip((codes, scale, zero), q))
            res = res[..., out:, :].clone()  # not a view of the float tokens just quantised
        self._s[kind] = [codes, scale, zero, res]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys, self.values = key_states[..., :0, :], value_states[..., :0, :]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Store the new states ``[batch, kv_heads, n, d]``; return all keys / values (old ones dequantised)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        keys = torch.cat([self.keys, key_states], dim=-2)
        values = torch.cat([self.values, value_states], dim=-2)
        self._append("k", key_states)
        self._append("v", value_states)
        return keys, values

    def get_seq_length(self) -> int:
        s = self._s["k"]
        return 0 if not self.is_initialized or s is None else s[0].shape[-2] + s[3].shape[-2]

    def _apply(self, fn) -> None:
        """``fn`` on every stored tensor (batch on dim 0, tokens on dim 2)."""
        for kind, s in self._s.items():
            if s is not None:
                self._s[kind] = [fn(t) for t in s]

    def gather(self, idx: torch.Tensor) -> None:
        """Keep the tokens ``idx [batch, kv_heads, n]`` (indices into the ``T`` cached tokens), gathering the
        stored codes themselves: exact, whatever the dtype. The residual is quantised first (once)."""
        for kind, s in self._s.items():
            if s is None:
                continue
            q = quantize(s[3], self.bits, self._group(s[3].shape[-1]))  # [b, h, Tr, ...]: the residual, now
            i = idx.to(s[0].device)[..., None]  # [batch, kv_heads, n, 1]
            self._s[kind] = [torch.cat([a, b], dim=-2).gather(2, i.expand(-1, -1, -1, a.shape[-1]))
                             for a, b in zip(s[:3], q)] + [s[3][..., :0, :].clone()]

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the newest ``-tokens_to_remove`` tokens (the float residual first)."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop({tokens_to_remove}): give minus the number of tokens to remove")
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        keep = max(self.get_seq_length() + tokens_to_remove, 0)
        for kind, s in self._s.items():
            if s is not None:
                tq = s[0].shape[-2]
                self._s[kind] = ([t[..., :min(keep, tq), :].clone() for t in s[:3]]
                                 + [s[3][..., :max(keep - tq, 0), :].clone()])

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.is_initialized:
            self._apply(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._apply(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._apply(lambda t: t[indices, ...].clone())

    def offload(self):
        self._apply(lambda t: t.to("cpu", non_blocking=True))

    def prefetch(self):
        self._apply(lambda t: t.to(self.device, non_blocking=True))

    def token_nbytes(self) -> int:
        """Bytes one quantised token costs per batch row: keys + values over key-value heads."""
        return sum(s[0].shape[1] * (s[0].shape[-1] + 2 * s[1].shape[-1] + 2 * s[2].shape[-1])
                   for s in self._s.values() if s is not None)

    def nbytes(self) -> int:
        """Bytes really held: codes, scales, zero-points and the float residual, keys and values."""
        return sum(_tensor_bytes(t) for s in self._s.values() if s is not None for t in s)


def cache_nbytes(cache) -> int:
    """Bytes a cache's layers really hold: :meth:`QuantizedLayer.nbytes`, or ``numel * element_size`` of float
    ``keys`` / ``values``."""
    return sum(layer.nbytes() if hasattr(layer, "nbytes") else
               _tensor_bytes(getattr(layer, "keys", None)) + _tensor_bytes(getattr(layer, "values", None))
               for layer in cache.layers)


def quantize_cache(cache, bits: int = 8, group: int = 32, residual: int = 0):
    """Swap every layer of a transformers ``DynamicCache`` for a :class:`QuantizedLayer`; returns ``cache``.

    ``group``: channels sharing a scale (clipped to ``head_dim``); ``residual``: newest tokens kept in float.
    Layers already holding tokens are quantised as they stand. Sliding-window and other special layers are
    refused (their ``update`` does more than append)."""
    made = [QuantizedLayer(bits, group, residual) for _ in cache.layers]  # checks bits / group / residual
    for i, layer in enumerate(cache.layers):
        if getattr(layer, "is_sliding", False):
            raise ShoestringError(f"layer {i} of the cache is a sliding-window layer, which KV quantisation does not "
                                  "support", "quantise a model whose layers all use full attention")
        if type(layer) is not DynamicLayer:
            raise ShoestringError(f"layer {i} of the cache is a {type(layer).__name__}, not a plain DynamicLayer",
                                  "quantise a fresh DynamicCache(config=model.config), once")
    for i, (layer, q) in enumerate(zip(cache.layers, made)):
        if layer.is_initialized and layer.keys is not None and layer.keys.dim() == 4:
            q.lazy_initialization(layer.keys, layer.values)
            q.keys, q.values = layer.keys, layer.values
        cache.layers[i] = q
    return cache
