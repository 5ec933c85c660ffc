"""Measured cost of a KV session: cache bytes per layer against what the budget says, peak memory (the CUDA
allocator's peak on a GPU, the process's resident set sampled on a thread on CPU), prefill and decode
latency and tokens per second."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import torch


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@contextmanager
def peak_memory(device: torch.device | str = "cpu", every: float = 0.002):
    """``with peak_memory(dev) as got: ...``; afterwards ``got["peak_bytes"]`` is the peak above the level at
    entry (CUDA: ``max_memory_allocated``; CPU: RSS sampled every ``every`` seconds)."""
    got = {"peak_bytes": 0, "how": ""}
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        yield got
        torch.cuda.synchronize(dev)
        got.update(peak_bytes=torch.cuda.max_memory_allocated(dev) - base, how="cuda max_memory_allocated")
        return
    base, peak, stop = rss_bytes(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            stop.wait(every)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield got
    finally:
        stop.set()
        t.join()
        peak[0] = max(peak[0], rss_bytes())
        got.update(peak_bytes=max(0, peak[0] - base), how="process RSS above the start, sampled")


def token_bytes(cache) -> list[int]:
    """Bytes one cached token costs in each layer (keys + values over key-value heads), from the tensors held."""
    out = []
    for layer in cache.layers:
        if hasattr(layer, "token_nbytes"):  # quantised: codes + scales + zero-points per token
            out.append(int(layer.token_nbytes()))
            continue
        n = 0
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None and t.numel():
                n += t[..., :1, :].numel() * t.element_size() // t.shape[0]
        out.append(n)
    return out


def layer_bytes(cache) -> list[int]:
    """Bytes each layer's cache really holds (a quantised layer reports its own ``nbytes()``)."""
    out = []
    for layer in cache.layers:
        if hasattr(layer, "nbytes"):
            out.append(int(layer.nbytes()))
            continue
        out.append(sum(t.numel() * t.element_size() for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                       if t is not None))
    return out


def timed(fn, device) -> tuple[object, float]:
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t = time.perf_counter()
    out = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return out, time.perf_counter() - t
