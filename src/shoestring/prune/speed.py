"""Measured speed of a model: prefill latency and greedy decode tokens/s (median of repeats, after a warm-up),
and its peak resident memory while doing so."""

from __future__ import annotations

import statistics
import time

import torch


@torch.no_grad()
def measure_speed(model, prompt: torch.Tensor, new_tokens: int = 32, repeats: int = 3) -> dict:
    """``{"prefill_s", "decode_tokens_per_s", "peak_bytes_above_start", ...}`` for ``prompt`` [B, T] and ``new_tokens`` greedy tokens."""
    from ..kv.measure import peak_memory

    model.eval()
    model(input_ids=prompt[:, :8])  # warm-up
    prefill, decode = [], []
    with peak_memory("cpu") as peak:
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model(input_ids=prompt, use_cache=True)
            prefill.append(time.perf_counter() - t0)
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            t0 = time.perf_counter()
            for _ in range(new_tokens):
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            decode.append(time.perf_counter() - t0)
    return {"prefill_s": statistics.median(prefill), "decode_tokens_per_s": prompt.shape[0] * new_tokens / statistics.median(decode),
            "peak_bytes_above_start": peak["peak_bytes"], "peak_how": peak["how"],
            "prefill_samples": prefill, "decode_samples": decode}
