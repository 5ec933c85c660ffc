"""From a grid's final losses to the CEG table: both estimators of :mod:`shoestring.scaling.ceg`, in FLOPs and
in wall-clock seconds, with the paper's numbers beside ours.

- **fitted** (Ho et al. 2024; Gundlach et al. 2025): each variant's final held-out loss at each budget, one
  row per seed, against the baseline's, through :func:`~shoestring.scaling.ceg.bootstrap_ceg`: ``CEG(C)`` at
  every budget with a 95% interval over seeds, and the slope of log CEG on log C with its interval
  (``flat``: the interval holds 0, a compute-independent idea; ``rising`` / ``falling`` otherwise);
- **time**: the same with wall-clock training seconds as the compute axis ("time-CEG", the only gain a
  kernel such as fused attention can have: its FLOPs are the same);
- **read-off** ("LLM-e Guess", https://arxiv.org/abs/2505.04075): on the largest budget's run of each seed,
  the first crossing of the baseline's final loss along the variant's evaluation curve, in FLOPs and in
  steps; the mean and range over seeds.
"""

from __future__ import annotations

import numpy as np

from .ceg import bootstrap_ceg, readoff_ceg
from .config import PAPER_CEG, PAPER_NOTE


def _grid(points: list[dict], variant: str, budgets, seeds, key: str) -> np.ndarray:
    """``[seeds, budgets]`` of ``key`` for one variant."""
    at = {(p["seed"], float(p["budget"])): p[key] for p in points if p["variant"] == variant}
    return np.array([[at[(s, float(b))] for b in budgets] for s in seeds], dtype=float)


def _direction(low: float, high: float) -> str:
    if np.isfinite(low) and low > 1:
        return "gain"
    if np.isfinite(high) and high < 1:
        return "loss"
    return "no clear change"


def _paper_direction(name: str) -> str | None:
    if name in PAPER_NOTE:
        return "loss"
    value = PAPER_CEG.get(name)
    if value is None:
        return None
    return "gain" if value > 1.1 else "no clear change"


def _kind(lo, hi) -> str:
    if lo is None or hi is None:
        return "unknown"
    if lo > 0:
        return "rising"
    if hi < 0:
        return "falling"
    return "flat"


def _readoff(points, baseline, variant, seeds, top) -> dict:
    flops, steps = [], []
    for s in seeds:
        b = next(p for p in points if p["variant"] == baseline and p["seed"] == s and float(p["budget"]) == top)
        v = next(p for p in points if p["variant"] == variant and p["seed"] == s and float(p["budget"]) == top)
        bc, vc = b["curve"], v["curve"]
        bl, vl = [r["val_loss"] for r in bc], [r["val_loss"] for r in vc]
        flops.append(readoff_ceg([r["flops"] for r in bc], bl, [r["flops"] for r in vc], vl))
        steps.append(readoff_ceg([r["step"] for r in bc], bl, [r["step"] for r in vc], vl))

    def summary(xs):
        xs = np.array(xs, dtype=float)
        ok = xs[np.isfinite(xs)]
        return {"mean": float(ok.mean()) if len(ok) else None, "min": float(ok.min()) if len(ok) else None,
                "max": float(ok.max()) if len(ok) else None, "reached": int(len(ok)), "of": int(len(xs))}
    return {"flops": summary(flops), "steps": summary(steps)}


def _listify(d: dict) -> dict:
    return {k: ([None if not np.isfinite(x) else float(x) for x in v] if isinstance(v, np.ndarray) else v)
            for k, v in d.items() if k != "fits"}


def analyse(points: list[dict], variants: list[str], baseline: str, budgets, seeds, meta: dict | None = None,
            n_boot: int = 200) -> dict:
    """The CEG result of a grid (see the module docstring); ``points`` are the cells with their final losses."""
    budgets = [float(b) for b in budgets]
    at = np.geomspace(min(budgets), max(budgets), 16)
    mid = float(np.sqrt(min(budgets) * max(budgets)))
    loss = {v: _grid(points, v, budgets, seeds, "val_loss") for v in variants}
    flops = {v: _grid(points, v, budgets, seeds, "flops").mean(0) for v in variants}
    secs = {v: _grid(points, v, budgets, seeds, "seconds").mean(0) for v in variants}
    out = {"variants": variants, "baseline": baseline, "budgets": budgets, "seeds": list(seeds), "at": at.tolist(),
           "mid": mid, "points": points, "fits": {}, "ceg": {}, "ceg_mid": {}, "time_ceg": {}, "readoff": {}, "table": [],
           "meta": meta or {}}
    if len(seeds) < 2:
        out["note"] = "one seed: no intervals (train at least 2 seeds)"
    for v in variants:
        if v == baseline:
            continue
        if len(seeds) >= 2:
            f = bootstrap_ceg(flops[baseline], loss[baseline], loss[v], budgets, n_boot=n_boot, C_variant=flops[v])
            curve = bootstrap_ceg(flops[baseline], loss[baseline], loss[v], at, n_boot=n_boot, C_variant=flops[v])
            m = bootstrap_ceg(flops[baseline], loss[baseline], loss[v], [mid], n_boot=n_boot, C_variant=flops[v])
            t_at = [float(np.sqrt(secs[baseline].min() * secs[baseline].max()))]
            t = bootstrap_ceg(secs[baseline], loss[baseline], loss[v], t_at, n_boot=n_boot, C_variant=secs[v])
            b_law, v_law = f["fits"]
            out["fits"][baseline] = vars(b_law)
            out["fits"][v] = vars(v_law)
            out["ceg"][v] = {**_listify(curve), "slope_low": f["slope_low"], "slope_high": f["slope_high"],
                             "slope": f["slope"], "at_budgets": _listify(f)}
            out["ceg_mid"][v] = {k: float(m[k][0]) for k in ("ceg", "low", "high")}
            out["time_ceg"][v] = {"at_seconds": t_at[0], **{k: float(t[k][0]) for k in ("ceg", "low", "high")}}
        out["readoff"][v] = _readoff(points, baseline, v, seeds, max(budgets))
        row = {"variant": v, "paper": PAPER_CEG.get(v), "paper_note": PAPER_NOTE.get(v),
               "readoff_flops": out["readoff"][v]["flops"]["mean"], "readoff_steps": out["readoff"][v]["steps"]["mean"],
               "readoff_reached": f"{out['readoff'][v]['flops']['reached']}/{out['readoff'][v]['flops']['of']}"}
        if v in out["ceg_mid"]:
            cm, tc, cg = out["ceg_mid"][v], out["time_ceg"][v], out["ceg"][v]
            row.update(ceg=cm["ceg"], low=cm["low"], high=cm["high"], time_ceg=tc["ceg"], time_low=tc["low"],
                       time_high=tc["high"], slope=cg["slope"], slope_low=cg["slope_low"], slope_high=cg["slope_high"],
                       scaling=_kind(cg["slope_low"], cg["slope_high"]), direction=_direction(cm["low"], cm["high"]))
            paper = _paper_direction(v)
            row["paper_direction"] = paper
            row["agrees"] = None if paper is None else paper == row["direction"]
        out["table"].append(row)
    return out
