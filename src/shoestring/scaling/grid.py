"""A scaling grid: variants x compute budgets x seeds, each cell one training run folder made by the sweep
executors (local processes or Ray), so an interrupted grid resumes with the missing cells and a cell
resumes from its checkpoint.

The default grid is the must-show of issue 8: the paper's baseline, +LayerNorm, +RoPE, +fused attention,
all three, multi-query; 4 budgets doubling; 3 seeds; a 4-layer, 128-wide GPT on Jane Austen's novels with a
1,024-token BPE. It takes about 35 minutes on 2 CPU cores.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ShoestringError
from ..runs.rundir import RunDir, default_root
from ..runs.sweep import Spec, run_sweep
from .config import GPTConfig, PRESETS, preset
from .flops import train_flops_per_token
from .train import TrainConfig, plan_steps

CELL_TASK = "shoestring.scaling.grid:train_cell"

DEFAULTS = {
    "variants": ["baseline", "layernorm", "rope", "fused", "all-three", "multi-query"],
    "baseline": "baseline",
    "budgets": [6e11, 1.2e12, 2.4e12, 4.8e12],
    "seeds": [0, 1, 2],
    "corpus": "austen",
    "tokenizer": "bpe",
    "vocab_size": 1024,
    "max_chars": None,
    "shape": {"d_model": 128, "n_layer": 4, "n_head": 4, "context": 128},
    "overrides": {},  # toggles applied to every variant, e.g. {"mlp": "swiglu"}
    "train": {"batch_size": 16, "lr": 3e-3, "evals": 6, "eval_tokens": 16384},
}


def variant_config(name: str, c: dict) -> GPTConfig:
    """The model of one variant: a preset name, or ``name`` = ``preset`` + ``{toggles}`` given in ``c['custom']``."""
    custom = c.get("custom", {})
    shape = {**c["shape"], "vocab_size": c["vocab_size"], **c.get("overrides", {})}
    if name in custom:
        base = custom[name]
        return preset(base.get("preset", "baseline"), **shape, **{k: v for k, v in base.items() if k != "preset"})
    return preset(name, **shape)


def check_config(config: dict) -> dict:
    """Defaults filled in and every cell checked (toggles, budgets, steps) before anything trains."""
    c = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    c["shape"] = {**DEFAULTS["shape"], **config.get("shape", {})}
    c["train"] = {**DEFAULTS["train"], **config.get("train", {})}
    if not c["variants"]:
        raise ShoestringError("no variants", f"name some of: {', '.join(PRESETS)}")
    if c["baseline"] not in c["variants"]:
        raise ShoestringError(f"the baseline '{c['baseline']}' is not among the variants", "add it to --variants")
    if len(c["budgets"]) < 3:
        raise ShoestringError(f"{len(c['budgets'])} budgets cannot be fitted", "give at least 3 budgets (4 or more is better)")
    if any(b <= 0 for b in c["budgets"]):
        raise ShoestringError("a budget is not positive", "budgets are training FLOPs, e.g. 6e11,1.2e12,2.4e12,4.8e12")
    if len(set(c["seeds"])) != len(c["seeds"]) or not c["seeds"]:
        raise ShoestringError(f"seeds {c['seeds']} are empty or repeat", "give distinct seeds, e.g. 0,1,2")
    TrainConfig.from_dict(c["train"])
    for v in c["variants"]:
        cfg = variant_config(v, c)
        for b in c["budgets"]:
            plan_steps(cfg, TrainConfig.from_dict({**c["train"], "budget": b}))
    return c


def cells(c: dict) -> list[dict]:
    return [{"variant": v, "budget": float(b), "seed": s} for s in c["seeds"] for b in c["budgets"] for v in c["variants"]]


def prepare_data(c: dict):
    """Tokenise the corpus once in this process (cached), so the cells only read it; check it holds a batch."""
    from .data import token_data

    data = token_data(c["corpus"], c["tokenizer"], c["vocab_size"], c["max_chars"])
    if data.vocab_size > c["vocab_size"]:
        raise ShoestringError(f"the tokenizer has {data.vocab_size} tokens, more than vocab_size {c['vocab_size']}",
                              f"set --vocab-size {data.vocab_size}")
    data.check(c["shape"]["context"], c["train"]["batch_size"], c["train"]["eval_tokens"])
    return data


def train_cell(config: dict, run) -> dict:
    """The ``scaling-cell`` task: train one variant to one budget with one seed; a checkpoint in the run
    folder resumes an interrupted cell."""
    import torch

    from .data import token_data
    from .train import train

    threads = os.environ.get("SHOESTRING_THREADS")
    torch.set_num_threads(int(threads) if threads else 1)
    c = {**DEFAULTS, **config}
    data = token_data(c["corpus"], c["tokenizer"], c["vocab_size"], c["max_chars"])
    cfg = variant_config(c["variant"], c)
    t = TrainConfig.from_dict({**c["train"], "budget": c["budget"], "seed": c["seed"]})
    out = train(cfg, t, data, checkpoint=run.path / "checkpoint")
    run.save_artifact("curve", {"curve": out.pop("curve")})
    return out


def scaling_grid(config: dict, root=None, executor: str = "local", max_parallel: int | None = None,
                 on_start=None, on_result=None) -> dict:
    """Run (or resume) every cell, then estimate CEG; returns :func:`shoestring.scaling.analysis.analyse`'s result."""
    from .analysis import analyse

    c = check_config(config)
    prepare_data(c)
    base = {k: c[k] for k in ("corpus", "tokenizer", "vocab_size", "max_chars", "shape", "overrides", "train")}
    if c.get("custom"):
        base["custom"] = c["custom"]
    spec = Spec(task=CELL_TASK, name="scaling", executor=executor, base=base, runs=cells(c),
                resources={"cpus": 1, "gpus": 0, "memory_gb": None})
    rows = run_sweep(spec, root=root, max_parallel=max_parallel, on_start=on_start, on_result=on_result)
    failed = [r for r in rows if r["status"] != "done"]
    if failed:
        raise ShoestringError(f"{len(failed)} of {len(rows)} cells failed, e.g. {failed[0]['params']}: {failed[0]['error']}",
                              "fix the cause and run the same command again: finished cells are kept")
    points = []
    for r in rows:
        curve = RunDir(Path(root or default_root()) / r["id"]).load_artifact("curve")["curve"]
        m = r["metrics"]
        points.append({**r["params"], "run": r["id"], "flops": m["flops"], "val_loss": m["val_loss"],
                       "seconds": m["train_seconds"], "steps": m["steps"], "tokens": m["tokens"],
                       "params": m["params"], "flops_per_token": m["flops_per_token"], "curve": curve})
    fpt = {v: train_flops_per_token(variant_config(v, c)) for v in c["variants"]}
    return analyse(points, c["variants"], c["baseline"], c["budgets"], c["seeds"], meta={"config": c, "flops_per_token": fpt})
