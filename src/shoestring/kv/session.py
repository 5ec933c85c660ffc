"""Run a model with a compressed KV cache: chunked prefill and token-by-token decoding through
transformers' public ``DynamicCache`` (``cache.layers[i].keys / .values``), no patched attention code.

After every chunk of the prefill and every decode step, each layer whose cache holds more than ``budget``
tokens keeps the ``budget`` the policy picks (per key-value head). Because evicted tokens leave holes, the
true position of every cached token is tracked, and new tokens are fed with their true ``position_ids``
(RoPE) while ``cache_position`` indexes the shortened cache (the causal mask). Compressing during the
prefill, chunk by chunk, is what makes peak memory drop: the full cache is never built.

    >>> s = KVSession(lm, StreamingLLM(sinks=4), budget=256, chunk=128)     # doctest: +SKIP
    >>> logits = s.feed(input_ids)        # [1, T, vocab], prefill in chunks  # doctest: +SKIP
    >>> s.cache_tokens()                  # tokens held per layer             # doctest: +SKIP

Rows of a batch must be unpadded and of one length (long-context evaluation feeds one text per session);
every row and key-value head keeps its own tokens.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from ..errors import ShoestringError
from .allocators import Allocator, Uniform
from .attention import session_attention
from .measure import layer_bytes
from .policies import Policy


class KVSession:
    """``quant`` (8 or 4) stores the kept keys and values quantised (:mod:`shoestring.kv.quant`).
    ``budget`` is the mean number of tokens a layer keeps; the ``allocator`` (uniform by default; PyramidKV,
    entropy-based) shares ``budget * n_layers`` between layers once, at the first compression, and
    ``budgets`` then holds each layer's share."""

    def __init__(self, lm, policy: Policy, budget: int | None = None, chunk: int = 256,
                 allocator: Allocator | None = None, quant: int | None = None):
        if budget is not None and int(budget) < 1:
            raise ShoestringError(f"a KV budget of {budget} tokens keeps nothing", "give a budget of at least 1 token")
        if chunk < 1:
            raise ShoestringError(f"chunk {chunk} is not a positive length", "e.g. chunk = 256")
        self.lm, self.policy, self.budget, self.chunk = lm, policy, budget, int(chunk)
        self.allocator = allocator or Uniform()
        self.budgets: list[int] | None = None  # per layer, set at the first compression
        self.impl = lm.model.config._attn_implementation or "eager"
        self.cache = DynamicCache(config=lm.model.config)
        if quant:  # the kept tokens stored at 8 or 4 bits (composes with any policy)
            from .quant import quantize_cache

            quantize_cache(self.cache, int(quant))
        self.positions: list[torch.Tensor | None] = []  # per layer: [batch, kv_heads, T] true positions
        self.seen = 0  # tokens fed so far (the next token's true position)
        self.steps = 0
        self.peak_tokens = 0  # the most tokens any layer held at once (right after a forward, before eviction)
        self.max_ctx = getattr(lm.model.config, "max_position_embeddings", None)
        self.attn = "attentions" in policy.needs or "attentions" in self.allocator.needs
        wants = ([policy.attention_queries()] if "attentions" in policy.needs else []) + \
            ([self.allocator.queries] if "attentions" in self.allocator.needs else [])
        self.rows = None if None in wants or not wants else max(wants)  # attention rows per step (None: all)
        self.acc: list[torch.Tensor] = []  # per layer [batch, kv_heads, T]: attention each cached token received
        self.last_attn: dict[int, torch.Tensor] = {}  # per layer [batch, kv_heads, q, T] of the last step
        if self.attn:
            try:
                self.names = [f"blocks.{i}.attn.hook_pattern" for i in range(lm.anatomy.n_layers)]
                for name in self.names:
                    lm.resolve(name)
            except ShoestringError as e:
                who = f"policy '{policy.name}'" if "attentions" in policy.needs else f"allocator '{self.allocator.name}'"
                raise ShoestringError(f"{who} needs attention weights, which this model does not expose "
                                      f"({e.problem})", "use a policy that reads only the cache (window, streaming, key_norm, random)")

    def cache_tokens(self) -> list[int]:
        """Tokens each layer's cache holds now."""
        return [int(layer.get_seq_length()) for layer in self.cache.layers]

    def cache_bytes(self) -> int:
        """Bytes the cache really holds now, over all layers (see :func:`~shoestring.kv.measure.layer_bytes`)."""
        return sum(layer_bytes(self.cache))

    @torch.no_grad()
    def feed(self, input_ids: torch.Tensor, *, return_logits: bool = True, query_aware: bool = False) -> torch.Tensor:
        """Feed ``input_ids [batch, T]`` in chunks, compressing after each; the logits of every fed position.

        ``query_aware``: compress once, after the last chunk, so that the end of the input (the question)
        picks what stays (SnapKV's setting). The full cache is built first, so peak memory does not drop:
        every result states which mode it ran."""
        if self.max_ctx and self.seen + input_ids.shape[1] > self.max_ctx:
            raise ShoestringError(f"{self.seen + input_ids.shape[1]} tokens exceed the model's context of {self.max_ctx}",
                                  "feed a shorter text (RoPE positions past the trained length are meaningless)")
        outs = []
        starts = list(range(0, input_ids.shape[1], self.chunk))
        for start in starts:
            logits = self.step(input_ids[:, start:start + self.chunk], compress=not query_aware or start == starts[-1],
                               last_only=not return_logits)
            if return_logits:
                outs.append(logits)
        return torch.cat(outs, dim=1) if return_logits else logits  # else: the last position's [batch, 1, vocab]

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, max_new_tokens: int, eos_token_id: int | None = None,
                 query_aware: bool = False) -> torch.Tensor:
        """Greedy decoding under the policy: the prompt in chunks (see :meth:`feed` for ``query_aware``),
        then one token per step (the budget holds throughout). Returns the new ids ``[batch, <= max_new_tokens]``."""
        logits = self.feed(prompt_ids, query_aware=query_aware, return_logits=False)
        new = []
        for i in range(max_new_tokens):
            nxt = logits[:, -1].argmax(-1, keepdim=True)  # [batch, 1]
            new.append(nxt)
            if i == max_new_tokens - 1 or (eos_token_id is not None and bool((nxt == eos_token_id).all())):
                break
            logits = self.step(nxt)
        return torch.cat(new, dim=1)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, compress: bool = True, last_only: bool = False) -> torch.Tensor:
        """One forward of ``ids [batch, n]`` (no chunking) at the next true positions, then eviction; the
        logits ``[batch, n, vocab]`` (``last_only``: ``[batch, 1, vocab]``, the LM head skips the rest)."""
        ids = ids.to(self.lm.device)
        b, n = ids.shape
        held = self.cache.get_seq_length()
        pos = torch.arange(self.seen, self.seen + n, device=ids.device)
        kwargs = {"input_ids": ids, "position_ids": pos[None].expand(b, n), "past_key_values": self.cache,
                  "cache_position": torch.arange(held, held + n, device=ids.device), "use_cache": True}
        if last_only:
            kwargs["logits_to_keep"] = 1
        pats: dict[int, torch.Tensor] = {}
        uneven = self.budgets is not None and len(set(self.budgets)) > 1
        read = self.attn and (compress or self.policy.accumulates)  # rows only where they will be read
        if read or uneven:  # per-layer masks, and the attention rows the policy reads
            rows = {i: self.rows for i in range(len(self.cache.layers))} if read else None
            with session_attention(self.impl, rows, pats):
                out = self.lm.model(**kwargs)
        else:
            out = self.lm.model(**kwargs)
        self.seen += n
        self.peak_tokens = max(self.peak_tokens, *self.cache_tokens())  # before eviction: the true peak
        self._track(pos, b)
        if read:
            self._attend(pats)
        if compress:
            self._compress()
        self.steps += 1
        return out.logits

    def _track(self, pos: torch.Tensor, b: int) -> None:
        for i, layer in enumerate(self.cache.layers):
            heads = layer.keys.shape[1]
            new = pos.to(layer.keys.device).expand(b, heads, -1)
            if i >= len(self.positions):
                self.positions.append(new)
            else:
                self.positions[i] = torch.cat([self.positions[i], new], dim=-1)
            if self.positions[i].shape[-1] != layer.keys.shape[-2]:
                raise ShoestringError("the cache and its position record disagree", "report this as a bug")

    def _attend(self, pats: dict[int, torch.Tensor]) -> None:
        """Per layer: the step's attention pattern summed over each key-value head's query heads, and the
        running total each cached token has received (H2O's heavy-hitter score; exact only when every
        row is computed, which is H2O's setting)."""
        if len(pats) != len(self.cache.layers):
            raise ShoestringError(f"attention was seen in {len(pats)} of {len(self.cache.layers)} layers",
                                  "this model's attention does not go through transformers' AttentionInterface; "
                                  "use a policy that reads only the cache")
        for i in range(len(self.cache.layers)):
            p = pats[i]  # [batch, q_heads, q, T]
            kvh = self.cache.layers[i].keys.shape[1]
            p = p.reshape(p.shape[0], kvh, p.shape[1] // kvh, *p.shape[2:]).sum(2)  # [batch, kv_heads, q, T]
            self.last_attn[i] = p
            got = p.sum(2)  # [batch, kv_heads, T]
            if i >= len(self.acc):
                self.acc.append(got)
            else:
                old = self.acc[i]
                self.acc[i] = got + torch.cat([old, old.new_zeros(*old.shape[:2], got.shape[-1] - old.shape[-1])], -1)

    def _compress(self) -> None:
        if self.budget is None:
            return
        if self.budgets is None:  # shares from the cache alone are set at once; from attention, once a
            if self.allocator.needs and max(self.cache_tokens()) <= self.budget:  # budget's worth is seen
                return
            self.budgets = self.allocator.allocate(int(self.budget), len(self.cache.layers),
                                                   {"attn": self.last_attn} if self.attn else {})
        for i, layer in enumerate(self.cache.layers):
            if layer.keys.shape[-2] <= self.budgets[i]:
                continue
            info = {"step": self.steps}
            if self.attn:
                info.update(attn=self.last_attn[i], acc=self.acc[i])
            idx = self.policy.keep(layer.keys, layer.values, self.budgets[i], positions=self.positions[i], layer=i,
                                   info=info)  # [batch, kv_heads, budget]
            if hasattr(layer, "gather"):  # a quantised layer gathers its codes (no re-quantisation)
                layer.gather(idx)
            else:
                layer.keys = layer.keys.gather(2, idx[..., None].expand(-1, -1, -1, layer.keys.shape[-1]))
                layer.values = layer.values.gather(2, idx[..., None].expand(-1, -1, -1, layer.values.shape[-1]))
            if layer.get_seq_length() != self.budgets[i]:  # no silent no-op: the cache has the size the budget says
                raise ShoestringError(f"layer {i} holds {layer.get_seq_length()} tokens after eviction to {self.budgets[i]}",
                                      "report this as a bug (the cache layer ignored the eviction)")
            self.positions[i] = self.positions[i].gather(2, idx)
            if self.attn:
                self.acc[i] = self.acc[i].gather(2, idx)
