"""Shared bench plumbing: interleaved timing, summaries, machine facts, atomic JSON results."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from pathlib import Path


def interleave(contenders: dict, repeats: int, budget_s: float = 1e9, min_repeats: int = 5,
               warmup: int = 0) -> dict[str, list[float]]:
    """Run every contender ``warmup`` times, then up to ``repeats`` rounds of one call each, interleaved
    (the starting contender rotates each round). Rounds stop once ``budget_s`` has gone by, never
    before ``min_repeats``."""
    names = list(contenders)
    for _ in range(warmup):
        for k in names:
            contenders[k]()
    times: dict[str, list[float]] = {k: [] for k in names}
    start = time.perf_counter()
    for r in range(repeats):
        if r >= min_repeats and time.perf_counter() - start > budget_s:
            break
        s = r % len(names)
        for k in names[s:] + names[:s]:
            gc.collect()
            t0 = time.perf_counter()
            contenders[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def stats(samples: list[float]) -> dict:
    return {
        "median_s": round(statistics.median(samples), 6),
        "min_s": round(min(samples), 6),
        "max_s": round(max(samples), 6),
        "n": len(samples),
        "samples_s": [round(x, 6) for x in samples],
    }


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[i] / b[i] (same round, adjacent calls: less sensitive to drift)."""
    return round(statistics.median(x / y for x, y in zip(a, b)), 4)


def machine() -> dict:
    import torch
    import transformers

    return {
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average_at_start": os.getloadavg(),
    }


def write_atomic(path: Path, data: dict) -> None:
    """The results JSON, written atomically (the project's own helper)."""
    from shoestring.runs.atomic import write_json

    write_json(path, data)
