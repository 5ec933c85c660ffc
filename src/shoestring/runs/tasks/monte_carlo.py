"""``monte-carlo-pi``: estimate pi from ``n`` random points in the unit square (no model; deterministic by seed)."""

from __future__ import annotations

import math

from . import register


@register("monte-carlo-pi", defaults={"n": 100_000, "seed": 0, "checkpoints": 10})
def monte_carlo_pi(config: dict, run) -> dict:
    """Draw ``n`` points with numpy's PCG64 seeded by ``seed``; pi ~ 4 x (fraction inside the quarter circle).

    Writes one sample row per checkpoint (the running estimate) so the samples view has something honest.

    Returns
    -------
    dict
        ``estimate``, ``abs_error`` (vs math.pi), ``n``, ``inside``.
    """
    import numpy as np

    n, checkpoints = int(config["n"]), max(1, int(config["checkpoints"]))
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(int(config["seed"]))
    inside, done, rows = 0, 0, []
    for i in range(checkpoints):
        m = n * (i + 1) // checkpoints - done
        xy = rng.random((m, 2))  # [m, 2]
        inside += int(((xy * xy).sum(1) <= 1.0).sum())
        done += m
        estimate = 4.0 * inside / done if done else float("nan")
        rows.append({"checkpoint": i, "points": done, "estimate": estimate, "abs_error": abs(estimate - math.pi)})
    run.write_samples(rows)
    return {"estimate": rows[-1]["estimate"], "abs_error": rows[-1]["abs_error"], "n": n, "inside": inside}
