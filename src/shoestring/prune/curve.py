"""Quality against size: importance criteria x pruning ratios, each cell one :func:`~shoestring.prune.run.prune_experiment`
in its own run folder, made by the sweep executors (:func:`shoestring.runs.run_sweep`), so an interrupted curve
resumes with the missing cells only.

A ratio is a share of the key-value groups *and* of the MLP channels to remove per layer (``0.3``), or a pair
``(heads, channels)`` (``(0.25, 0.1)``). Each cell loads its model by name (:func:`shoestring.load`), so the
cells are independent processes; they run one at a time by default, because a cell measures speed (unless
``speed`` is off) and parallel cells would slow each other's clocks.

>>> result = prune_curve({"model": "smollm2-135m", "criteria": ["magnitude", "wanda"],
...                       "ratios": [0.2, 0.4]}, root="runs")                     # doctest: +SKIP
>>> [(c["criterion"], round(c["params_removed"], 3)) for c in result["cells"]]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ShoestringError
from .importance import CRITERIA
from .run import PruneConfig

CELL_TASK = "shoestring.prune.curve:prune_cell"

# Per-cell settings (the PruneConfig fields a curve shares across its cells), with their defaults.
CELL_DEFAULTS = {"model": "smollm2-135m", "device": "cpu", "task": "stdlib-code", "other": "austen", "contrast": 0.5,
                 "uniform": True, "calib_contexts": 32, "eval_contexts": 16, "length": 256, "batch_size": 4,
                 "recover_tokens": 0, "recover_lr": 5e-5, "speed": True, "speed_prompt": 256, "speed_tokens": 32,
                 "speed_repeats": 5}
DEFAULTS = {**CELL_DEFAULTS, "criteria": ["magnitude", "wanda", "taylor"], "ratios": [0.2, 0.3, 0.4, 0.5]}
EXECUTORS = ("local", "ray")


def heads_only(name: str) -> bool:
    """The criterion scores key-value groups only (no MLP channels), e.g. attention entropy."""
    return bool(getattr(CRITERIA[name], "heads_only", False))


def _pair(r) -> list[float]:
    """``[heads, channels]`` from a share (both alike) or a pair."""
    if isinstance(r, (list, tuple)):
        if len(r) != 2:
            raise ShoestringError(f"ratio {list(r)} is not a (heads, channels) pair", "give 0.3 or a pair such as 0.25:0.1")
        h, c = r
    else:
        h = c = r
    try:
        return [float(h), float(c)]
    except (TypeError, ValueError):
        raise ShoestringError(f"ratio {r!r} is not a number", "give shares such as 0.2,0.3 or pairs such as 0.25:0.1")


def check_config(config: dict, executor: str = "local") -> dict:
    """The curve config with defaults filled, ratios as ``[heads, channels]`` pairs, and every cell checked.

    Parameters
    ----------
    config
        Keys of :data:`DEFAULTS` (``None`` values take the default).
    executor
        ``"local"`` or ``"ray"``.

    Returns
    -------
    dict
        The resolved config.

    Raises
    ------
    ShoestringError
        On an unknown criterion or executor, an empty list, a repeated entry, a ratio outside [0, 1), a pair
        that prunes nothing, or a count out of range: before any cell runs.
    """
    c = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    unknown = set(c) - set(DEFAULTS)
    if unknown:
        raise ShoestringError(f"unknown curve setting(s) {', '.join(sorted(unknown))}", f"use {', '.join(DEFAULTS)}")
    if executor not in EXECUTORS:
        raise ShoestringError(f"unknown executor '{executor}'", "use --executor local or --executor ray")
    c["criteria"] = [str(x).strip() for x in c["criteria"]]
    if not c["criteria"]:
        raise ShoestringError("no criteria to compare", f"name some of: {', '.join(CRITERIA)}")
    for name in c["criteria"]:
        if name not in CRITERIA:
            raise ShoestringError(f"unknown criterion '{name}'", f"use some of: {', '.join(CRITERIA)}")
    if not c["ratios"]:
        raise ShoestringError("no pruning ratios", "give shares such as 0.2,0.3,0.4 (or heads:channels pairs)")
    c["ratios"] = [_pair(r) for r in c["ratios"]]
    for what, items in (("criteria", c["criteria"]), ("ratios", [tuple(r) for r in c["ratios"]])):
        if len(set(items)) != len(items):
            raise ShoestringError(f"the {what} repeat", f"give each of the {what} once")
    for h, ch in c["ratios"]:
        for name, v in (("head", h), ("channel", ch)):
            if not 0.0 <= v < 1.0:
                raise ShoestringError(f"{name} ratio {v:g} is outside [0, 1)", "give a share such as 0.25")
        if h == 0 and ch == 0:
            raise ShoestringError("a ratio of 0 for heads and channels: nothing would be pruned",
                                  "give shares above 0 (a 0:0.2 pair prunes channels only)")
    for name in c["criteria"]:
        if heads_only(name) and any(ch for _, ch in c["ratios"]):
            raise ShoestringError(f"criterion '{name}' scores heads only, so a channels ratio cannot apply to it",
                                  "give heads:0 pairs (e.g. --ratios 0.3:0,0.5:0) or leave it out of --criteria")
    for key, low in (("calib_contexts", 1), ("eval_contexts", 1), ("length", 2), ("batch_size", 1), ("speed_prompt", 1),
                     ("speed_tokens", 1), ("speed_repeats", 1), ("recover_tokens", 0)):
        if int(c[key]) < low:
            raise ShoestringError(f"{key.replace('_', ' ')} {c[key]} is below {low}", f"give {key} >= {low}")
    if not c["task"]:
        raise ShoestringError("no task corpus", "name the corpus of the domain to keep, e.g. --task stdlib-code")
    for cell in cells(c):
        prune_config(cell).check()
    return c


def check_model(c: dict, lm) -> None:
    """Checks that need the model: its layout, a head or channel ratio that removes nothing at its width, corpora
    too small for the calibration and held-out contexts, and a recovery budget below one batch."""
    from .evaluate import batches
    from .importance.base import blocks_and_shape
    from .recover import RecoveryConfig

    blocks, _, groups, _ = blocks_and_shape(lm.model)
    channels = lm.model.config.intermediate_size
    for h, ch in c["ratios"]:
        for ratio, n, what, flag in ((h, groups, "key-value group", "heads"), (ch, channels, "MLP channel", "channels")):
            if ratio and max(1, round(n * (1 - ratio))) == n:
                raise ShoestringError(f"a {flag} ratio of {ratio:g} removes no {what} of {n}",
                                      f"use a ratio of at least {1 / n:.2g} (or 0 to keep them all)")
    for d in [c["task"]] + ([c["other"]] if c["other"] else []):
        batches(lm.tokenizer, d, c["calib_contexts"] + c["eval_contexts"], c["length"], c["batch_size"])
    if c["recover_tokens"]:
        RecoveryConfig(tokens=c["recover_tokens"], batch_size=c["batch_size"], length=c["length"]).steps()


def cells(c: dict) -> list[dict]:
    """One cell config per criterion x ratio (criterion-major), each with the shared settings."""
    base = {k: c[k] for k in CELL_DEFAULTS}
    base["other"] = base["other"] or ""  # None cannot go into config.toml; '' means no other domain
    return [{**base, "criterion": name, "head_ratio": float(h), "channel_ratio": float(ch)}
            for name in c["criteria"] for h, ch in c["ratios"]]


def prune_config(cell: dict) -> PruneConfig:
    """The :class:`PruneConfig` of one cell config."""
    known = {f.name for f in dataclasses.fields(PruneConfig)}
    fields = {k: cell[k] for k in CELL_DEFAULTS if k in known}
    fields["other"] = fields["other"] or None
    return PruneConfig(criterion=cell["criterion"], head_ratio=cell["head_ratio"], channel_ratio=cell["channel_ratio"],
                       **fields)


def prune_cell(config: dict, run) -> dict:
    """The ``prune-curve`` cell task: load the model by name, prune it by one criterion at one ratio, measure it.

    Writes ``plan.json`` and ``artifacts/result.json`` (the result of :func:`prune_experiment`) into the cell's
    run folder; recovery, when asked, checkpoints under ``recovery/`` so an interrupted cell resumes there.

    Returns
    -------
    dict
        The headline metrics: share of parameters removed, perplexity per domain (pruned and final) and
        the ratios to the original, speedups.
    """
    import torch

    import shoestring

    from .run import prune_experiment

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a cell's output is its run folder, not a log of progress bars
    threads = os.environ.get("SHOESTRING_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    cell = {**CELL_DEFAULTS, **config}
    lm = shoestring.load(cell["model"], device=cell["device"])
    result, _, plan = prune_experiment(lm, prune_config(cell), checkpoint=run.path / "recovery")
    plan.save(run.path / "plan.json")
    run.save_artifact("result", result)
    final = (result["recovered"] or result["pruned"])["perplexity"]
    return {"criterion": cell["criterion"], "head_ratio": cell["head_ratio"], "channel_ratio": cell["channel_ratio"],
            "params_removed": result["params_removed"], "pruned_perplexity": result["pruned"]["perplexity"],
            "final_perplexity": final, "perplexity_ratio": result["perplexity_ratio"],
            **{k: result[k] for k in ("flop_reduction", "prefill_speedup", "decode_speedup") if k in result}}


def gather(c: dict, rows: list[dict], root=None) -> dict:
    """``{"config": c, "cells": [...]}``: each cell is its run's :func:`prune_experiment` result (speed samples
    dropped) plus ``criterion``, ``head_ratio``, ``channel_ratio``, ``task``, ``other`` and ``run`` (its folder name)."""
    from ..runs import RunDir
    from ..runs.rundir import default_root

    out = []
    for r in rows:
        res = RunDir.open(Path(root or default_root()) / r["id"]).load_artifact("result")
        for stage in ("before", "pruned"):
            for k in ("prefill_samples", "decode_samples"):
                (res[stage].get("speed") or {}).pop(k, None)
        p = r["params"]
        out.append({"criterion": p["criterion"], "head_ratio": p["head_ratio"], "channel_ratio": p["channel_ratio"],
                    "task": c["task"], "other": c["other"] or None, "run": r["id"], **res})
    return {"config": c, "cells": out}


def prune_curve(config: dict, root=None, executor: str = "local", lm=None, max_parallel: int = 1,
                on_start: Callable | None = None, on_result: Callable | None = None) -> dict:
    """Run (or resume) every cell of the curve; return :func:`gather`'s result.

    Parameters
    ----------
    config
        ``model``, ``criteria``, ``ratios`` and the shared cell settings (see :data:`DEFAULTS`).
    root
        Where the cells' run folders go (default ``$SHOESTRING_RUNS`` or ``./runs``).
    executor
        ``"local"`` (a process per cell) or ``"ray"``.
    lm
        The loaded model, if at hand: checks that need it (:func:`check_model`) then run before any cell.
    max_parallel
        Cells at once (default 1: each cell times its model, and parallel cells disturb the clock).
    on_start, on_result
        Progress hooks of :func:`shoestring.runs.run_sweep`.

    Raises
    ------
    ShoestringError
        On bad input (before any cell runs), or when some cells failed (the finished ones are kept).
    """
    from ..runs.sweep import Spec, run_sweep

    c = check_config(config, executor)
    if lm is not None:
        check_model(c, lm)
    spec = Spec(task=CELL_TASK, name="prune-curve", executor=executor, runs=cells(c),
                resources={"cpus": os.cpu_count() or 1, "gpus": 0, "memory_gb": None})
    rows = run_sweep(spec, root=root, max_parallel=max_parallel, on_start=on_start, on_result=on_result)
    failed = [r for r in rows if r["status"] != "done"]
    if failed:
        p = failed[0]["params"]
        raise ShoestringError(f"{len(failed)} of {len(rows)} cells failed (first: {p['criterion']} at "
                              f"{p['head_ratio']:g}/{p['channel_ratio']:g}: {failed[0].get('error')})",
                              "see the cell's run folder; rerunning the same command redoes only the missing cells")
    return gather(c, rows, root)
