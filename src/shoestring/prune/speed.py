"""Measured speed of a model: prefill latency and greedy decode tokens/s (median of repeats, after a warm-up),
its peak resident memory while doing so, and the analytic forward FLOPs the speed-up should be compared with."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


@torch.no_grad()
def _once(model, prompt: torch.Tensor, new_tokens: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = model(input_ids=prompt, use_cache=True)
    prefill = time.perf_counter() - t0
    cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    t0 = time.perf_counter()
    for _ in range(new_tokens):
        out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
        cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    return prefill, time.perf_counter() - t0


def _summary(prompt, new_tokens, prefill, decode, peak=None) -> dict:
    out = {"prefill_s": statistics.median(prefill),
           "decode_tokens_per_s": prompt.shape[0] * new_tokens / statistics.median(decode),
           "prefill_samples": prefill, "decode_samples": decode}
    if peak is not None:
        out.update({"peak_bytes_above_start": peak["peak_bytes"], "peak_how": peak["how"]})
    return out


@torch.no_grad()
def measure_speed(model, prompt: torch.Tensor, new_tokens: int = 32, repeats: int = 3) -> dict:
    """``{"prefill_s", "decode_tokens_per_s", "peak_bytes_above_start", ...}`` for ``prompt`` [B, T] and ``new_tokens`` greedy tokens."""
    from ..kv.measure import peak_memory

    model.eval()
    model(input_ids=prompt[:, :8])  # warm-up
    prefill, decode = [], []
    with peak_memory("cpu") as peak:
        for _ in range(repeats):
            p, d = _once(model, prompt, new_tokens)
            prefill.append(p)
            decode.append(d)
    return _summary(prompt, new_tokens, prefill, decode, peak)


@torch.no_grad()
def compare_speed(models: dict, prompt: torch.Tensor, new_tokens: int = 32, repeats: int = 5) -> dict:
    """Speed of several models measured interleaved (A B A B ...), so a burst of machine load hits all alike;
    ``{name: measure_speed-like dict}`` (without memory: measure that with :func:`measure_speed`)."""
    samples = {name: ([], []) for name in models}
    for m in models.values():
        m.eval()
        _once(m, prompt[:, :8], 2)  # warm-up
    for _ in range(repeats):
        for name, m in models.items():
            p, d = _once(m, prompt, new_tokens)
            samples[name][0].append(p)
            samples[name][1].append(d)
    return {name: _summary(prompt, new_tokens, *s) for name, s in samples.items()}


def forward_flops(model, context: int) -> float:
    """Analytic forward FLOPs for one token at position ``context``: 2 x every linear layer's weights (the LM
    head included) plus the attention scores and the weighted sum over ``context`` keys (4 x query-head width
    per layer). Embedding lookups and norms are not counted."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    attn = 0
    for m in model.modules():
        q = getattr(m, "q_proj", None)
        if isinstance(q, nn.Linear):
            attn += 4 * q.out_features * context
    return 2.0 * linear + attn
