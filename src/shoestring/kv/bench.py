"""``shoestring kv bench``: a grid of policies x budgets (plus the full cache) run as cells through the sweep
executors, gathered into one result: per-case scores, summaries with 95% bootstrap intervals and the
fraction of the full cache's score kept, the perplexity curves and the measured cost of every cell.

    >>> result = kv_bench({"policies": ["streaming", "snapkv"], "budgets": [0.5, 0.25]}, root="runs")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ShoestringError
from ..runs.sweep import Spec, run_sweep
from ..steer.stats import bootstrap_mean_ci
from .harness import DEFAULTS, TASKS
from .presets import DEFAULT_GRID, make_policy

CELL_TASK = "shoestring.kv.harness:run_cell"


def check_config(config: dict, max_context: int | None = None) -> dict:
    """The bench config with defaults filled; bad values are one clear error before anything runs."""
    c = {**DEFAULTS, "policies": list(DEFAULT_GRID), "budgets": [0.5, 0.25, 0.125], "budget_token_list": [],
         **{k: v for k, v in config.items() if v is not None}}
    for b in c["budgets"]:
        if not 0.0 < float(b) <= 1.0:
            raise ShoestringError(f"budget {b} is not a fraction of the context in (0, 1]",
                                  "give fractions such as 0.5,0.25,0.125 (or token counts with --budget-tokens)")
    for t in c["budget_token_list"]:
        if int(t) < 1:
            raise ShoestringError(f"a budget of {t} tokens keeps nothing", "give token budgets of at least 1")
    if c["window"] is not None and int(c["window"]) < 1:
        raise ShoestringError(f"window {c['window']} is not a positive length", "e.g. --window 32")
    for t in c["tasks"]:
        if t not in TASKS:
            raise ShoestringError(f"unknown task '{t}'", f"use some of {', '.join(TASKS)}")
    lengths = list(c["lengths"]) + ([c["ppl_length"]] if "perplexity" in c["tasks"] else [])
    for n in lengths:
        if max_context and int(n) > max_context:
            raise ShoestringError(f"a context of {n} tokens is longer than the model's {max_context}",
                                  f"use lengths of at most {max_context} tokens")
    shortest = min(int(n) for n in lengths)
    for t in c["budget_token_list"]:
        if int(t) >= shortest:
            raise ShoestringError(f"a window of {t} tokens is not smaller than the {shortest}-token context",
                                  "give a token budget below the shortest context (it would evict nothing)")
    for name in c["policies"]:  # an unknown name fails here; so does an observation window as long as the context
        w = getattr(make_policy(name, window=c["window"])[0], "window", None)
        if w is not None and int(w) >= shortest:
            raise ShoestringError(f"policy '{name}' has an observation window of {w} tokens, not smaller than the "
                                  f"{shortest}-token context", "use longer contexts or a smaller --window")
    if c["passkey_filler"] not in ("standard", "prose"):
        raise ShoestringError(f"passkey filler '{c['passkey_filler']}'", "use standard (repeated sentences) or prose")
    if int(c["chunk"]) < 1:
        raise ShoestringError(f"chunk {c['chunk']} is not a positive length", "e.g. --chunk 128")
    return c


def cells(c: dict) -> list[dict]:
    """One run per (policy, budget) and one full-cache run."""
    out = [{"policy": "full", "budget": 1.0, "budget_tokens": None}]
    for p in c["policies"]:
        out += [{"policy": p, "budget": float(b), "budget_tokens": None} for b in c["budgets"]]
        out += [{"policy": p, "budget": 1.0, "budget_tokens": int(t)} for t in c["budget_token_list"]]
    return out


def kv_bench(config: dict, root=None, executor: str = "local", max_context: int | None = None,
             on_start: Callable | None = None, on_result: Callable | None = None) -> dict:
    """Run (or resume) the grid; return the gathered result (the schema :func:`shoestring.report.kv.kv_page` reads)."""
    c = check_config(config, max_context)
    base = {k: c[k] for k in DEFAULTS if k not in ("policy", "budget", "budget_tokens")}
    spec = Spec(task=CELL_TASK, name="kv-bench", executor=executor, base=base, runs=cells(c),
                resources={"cpus": os.cpu_count() or 1, "gpus": 0, "memory_gb": None})
    rows = run_sweep(spec, root=root, max_parallel=1, on_start=on_start, on_result=on_result)
    failed = [r for r in rows if r["status"] != "done"]
    if failed:
        raise ShoestringError(f"{len(failed)} of {len(rows)} cells failed (first: {failed[0]['params']}: {failed[0].get('error')})",
                              "see the cell's run folder; rerunning the same command redoes only the missing cells")
    return gather(c, rows, root)


def _budget_key(r: dict):
    p = r["params"]
    return None if p["policy"] == "full" else (p.get("budget_tokens") or p.get("budget"))


def gather(c: dict, rows: list[dict], root=None) -> dict:
    from ..runs import RunDir
    from ..runs.rundir import default_root

    scores, curves, cost = [], [], []
    for r in rows:
        run = RunDir.open(Path(root or default_root()) / r["id"])
        budget = _budget_key(r)
        for s in run.samples().to_pylist():
            scores.append({**s, "budget": budget})
        for cv in run.load_artifact("curves")["curves"]:
            curves.append({"policy": r["params"]["policy"], "budget": budget, **cv})
        cost.append({"policy": r["params"]["policy"], "budget": budget, **run.metrics["cost"]})
    tasks = {t: {"higher_is_better": TASKS[t][0], "metric": TASKS[t][1]} for t in c["tasks"]}
    return {"model": c["model"] or "SmolLM2-135M-Instruct", "mode": "query-aware" if c["query_aware"] else "query-agnostic",
            "chunk": c["chunk"], "quant": c["quant"], "policies": ["full", *c["policies"]],
            "budgets": [float(b) for b in c["budgets"]] + [int(t) for t in c["budget_token_list"]],
            "tasks": tasks, "scores": scores, "summary": summarise(scores, tasks), "curves": curves, "cost": cost,
            "config": {k: v for k, v in c.items()}}


def summarise(scores: list[dict], tasks: dict) -> list[dict]:
    groups: dict[tuple, list[float]] = {}
    for s in scores:
        groups.setdefault((s["task"], s["policy"], s["budget"]), []).append(float(s["score"]))
    out = []
    for (task, policy, budget), vals in groups.items():
        mean = sum(vals) / len(vals)
        lo, hi = bootstrap_mean_ci(vals) if len(vals) > 1 else (mean, mean)
        full = groups.get((task, "full", None))
        rel = None
        if full:
            fm = sum(full) / len(full)
            if tasks[task]["higher_is_better"]:
                rel = mean / fm if fm else None
            else:
                rel = fm / mean if mean else None
        out.append({"task": task, "policy": policy, "budget": budget, "mean": mean, "ci_low": lo, "ci_high": hi,
                    "n": len(vals), "relative_to_full": rel})
    return out


def best_at(summary: list[dict], task: str, budget, higher: bool = True) -> dict | None:
    """The best compressed policy for ``task`` at ``budget`` (ties: the first)."""
    rows = [s for s in summary if s["task"] == task and s["budget"] == budget and s["policy"] != "full"]
    if not rows:
        return None
    return (max if higher else min)(rows, key=lambda s: s["mean"] if not math.isnan(s["mean"]) else -math.inf)
