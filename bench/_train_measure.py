"""Measurement helpers of ``bench/train.py``: the machine's fp32 matmul rate, a bootstrap interval of a paired
ratio, and a short profile of each training loop."""

from __future__ import annotations

import random
import statistics
import time

import torch


def matmul_rate(n: int, reps: int) -> dict:
    """Best-of-``reps`` FLOP/s of ``torch.mm`` on two n x n fp32 matrices (2 n^3 FLOPs a call)."""
    g = torch.Generator().manual_seed(n)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {"n": n, "reps": reps, "best_s": round(best, 6), "median_s": round(statistics.median(times), 6),
            "best_flops_per_s": round(2 * n ** 3 / best, 1),
            "median_flops_per_s": round(2 * n ** 3 / statistics.median(times), 1)}


def matmul_rates(reps: int) -> dict:
    return {f"fp32_{n}": matmul_rate(n, reps if n <= 1024 else max(2, reps // 2)) for n in (1024, 2048)}


def bootstrap_ci(num: list[float], den: list[float], n_boot: int = 2000, seed: int = 0) -> list[float] | None:
    """95% percentile-bootstrap interval (over rounds) of the median same-round ratio num[i] / den[i]."""
    r = [x / y for x, y in zip(num, den)]
    if len(r) < 3:
        return None
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(r, k=len(r))) for _ in range(n_boot))
    return [round(meds[int(0.025 * n_boot)], 4), round(meds[int(0.975 * n_boot) - 1], 4)]


def profile(loops: dict, steps: int, rows: int) -> dict:
    from torch.profiler import ProfilerActivity, profile as prof

    out = {}
    for k, loop in loops.items():
        with prof(activities=[ProfilerActivity.CPU]) as p:
            loop.run(steps)
        table = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
        print(f"\n--- profile: {k} ({steps} steps) ---\n{table}", flush=True)
        ev = sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)[:rows]
        out[k] = [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 3),
                   "cpu_total_ms": round(e.cpu_time_total / 1e3, 3)} for e in ev]
    return out
