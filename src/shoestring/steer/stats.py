"""Statistics of a steering experiment: paired effects with bootstrap intervals, and the wrong-way fraction.

An effect is the mean over prompts of ``score(steered) - score(unsteered)`` for the same prompt and seed
(paired, so prompt difficulty cancels). Its 95% interval is the percentile bootstrap over prompts
(Efron & Tibshirani 1993). The wrong-way fraction is the share of prompts whose score moved against the
intended sign, the failure Tan et al. 2024 measure ("Analyzing the Generalization and Reliability of
Steering Vectors", https://arxiv.org/abs/2407.12404).
"""

from __future__ import annotations

import math

import torch


def bootstrap_mean_ci(diffs, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (NaNs dropped)."""
    d = torch.as_tensor([x for x in diffs if not math.isnan(x)], dtype=torch.float64)
    if len(d) == 0:
        return float("nan"), float("nan")
    if len(d) == 1:
        return float(d[0]), float(d[0])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(d), (n_boot, len(d)), generator=g)
    means = d[idx].mean(1)
    a = (1 - level) / 2
    q = torch.quantile(means, torch.tensor([a, 1 - a], dtype=torch.float64))
    return float(q[0]), float(q[1])


def effect(steered, base, sign: float = 1.0, n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired effect of steering on one judge: mean difference, 95% CI, standardised effect (mean / sd of
    the differences), and the fraction of prompts that moved the wrong way (against ``sign``; NaN when
    ``sign`` is 0, a judge measured for its side effect with no intended direction)."""
    diffs = [s - b for s, b in zip(steered, base) if not (math.isnan(s) or math.isnan(b))]
    if not diffs:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "d": float("nan"),
                "wrong_way": float("nan"), "n": 0}
    t = torch.tensor(diffs, dtype=torch.float64)
    sd = float(t.std()) if len(t) > 1 else float("nan")
    lo, hi = bootstrap_mean_ci(diffs, n_boot=n_boot, seed=seed)
    return {"mean": float(t.mean()), "ci_low": lo, "ci_high": hi,
            "d": float(t.mean()) / sd if sd and not math.isnan(sd) else float("nan"),
            "wrong_way": float(((t * sign) < 0).double().mean()) if sign else float("nan"), "n": len(diffs)}


def fmt_ci(e: dict) -> str:
    """``+0.621 [+0.411, +0.841]``: an effect with its interval, as the CLI and the report print it."""
    return f"{e['mean']:+.3f} [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"


def excludes_zero(e: dict) -> bool:
    return e["n"] > 0 and (e["ci_low"] > 0 or e["ci_high"] < 0)
