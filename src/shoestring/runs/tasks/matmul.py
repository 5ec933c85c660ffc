"""``matmul-bench``: time an ``n x n`` matmul with torch and report FLOP/s (no model)."""

from __future__ import annotations

import time

from . import register


@register("matmul-bench", defaults={"n": 256, "repeats": 5, "dtype": "float32", "device": "cpu", "threads": 1, "seed": 0})
def matmul_bench(config: dict, run) -> dict:
    """Best-of-``repeats`` wall time of ``a @ b`` for two random ``[n, n]`` matrices; FLOPs = 2 n^3.

    ``threads`` pins torch's intra-op threads so parallel runs do not fight over cores. Saves the
    per-repeat timings as a JSON artifact.

    Returns
    -------
    dict
        ``seconds`` (best), ``flops_per_s``, ``gflops_per_s``, ``n``.
    """
    import torch

    n, repeats = int(config["n"]), max(1, int(config["repeats"]))
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    torch.set_num_threads(int(config["threads"]))
    dtype = getattr(torch, config["dtype"])
    device = torch.device(config["device"])
    gen = torch.Generator().manual_seed(int(config["seed"]))
    a = torch.randn(n, n, generator=gen).to(device, dtype)  # [n, n]
    b = torch.randn(n, n, generator=gen).to(device, dtype)  # [n, n]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b  # warm-up: first call pays for kernel selection
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t0)
    best = min(times)
    run.save_artifact("timings", {"seconds": times, "n": n, "dtype": config["dtype"], "device": str(device)})
    flops = 2.0 * n**3 / best
    return {"seconds": best, "flops_per_s": flops, "gflops_per_s": flops / 1e9, "n": n}
