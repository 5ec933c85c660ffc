"""``shoestring attack grid``: the suite over models x compression settings (compression x safety), each cell a suite
run in its own folder made by the sweep executors (a rerun redoes only what is missing); one report compares the
cells. A pruned model is a model: pass the folder ``shoestring prune run`` wrote among ``--models``."""

from __future__ import annotations

import os

import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, JsonOpt, comma_list, console, emit_json, print_table
from ._report import OutOpt, say_where


def grid(
    models: str = typer.Option("smollm2-135m", "--models", help="comma-separated models (bundled names or folders)"),
    compression: str = typer.Option("none,kv:streaming:0.5,skip:17+25", "--compression",
                                    help="comma-separated settings: none, kv:<policy>:<keep>, skip:<l1>+<l2>"),
    attacks: str = typer.Option("none,base64,code_comment", "--attacks"),
    behaviours: str = typer.Option("advbench", "--behaviours"),
    n: int = typer.Option(10, "--n"),
    judges: str = typer.Option("target,refusal", "--judges"),
    judge_model: str = typer.Option(None, "--judge-model"),
    benign: int = typer.Option(10, "--benign"),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens"),
    gcg_steps: int = typer.Option(50, "--gcg-steps"),
    seed: int = typer.Option(0, "--seed"),
    executor: str = typer.Option("local", "--executor", help="local or ray"),
    max_parallel: int = typer.Option(1, "--max-parallel"),
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Models x compression settings, the same attacks and judges in every cell: how compression changes safety."""
    from ..attack.run import CELL_TASK
    from ..attack.suite import SuiteConfig
    from ..report.attack import grid_page
    from ..runs import RunDir
    from ..runs.sweep import Spec, run_sweep

    if executor not in ("local", "ray"):
        raise ShoestringError(f"unknown executor '{executor}'", "use local or ray")
    cells = []
    for m in comma_list(models):
        for c in comma_list(compression):
            cfg = SuiteConfig(model=m, compression=c, attacks=comma_list(attacks), behaviours=behaviours, n=n,
                              judges=comma_list(judges), judge_model=judge_model, benign=benign,
                              max_new_tokens=max_new_tokens, gcg_steps=gcg_steps, seed=seed, device=device).check()
            cells.append(cfg.to_dict())
    if not cells:
        raise ShoestringError("the grid has no cells", "give at least one --models and one --compression")
    spec = Spec(task=CELL_TASK, name="attack-grid", executor=executor, runs=cells,
                resources={"cpus": os.cpu_count() or 1, "gpus": 0, "memory_gb": None})

    def on_result(row):
        if not json_out:
            c = row.get("config") or {}  # (an executor's row: the cell's run config; "params" come at the end)
            console.print(f"  cell {c.get('model', row['id'])} / {c.get('compression', '?')}: {row['status']}",
                          highlight=False, markup=False)

    rows = run_sweep(spec, root=out, max_parallel=max_parallel, on_result=on_result)
    failed = [r for r in rows if r["status"] != "done"]
    if failed:
        raise ShoestringError(f"{len(failed)} of {len(rows)} cells failed (first: {failed[0].get('error')})",
                              "see the cell's run folder; rerunning the same command redoes only the missing cells")
    table = [{"model": r["params"]["model"], "compression": r["params"]["compression"], "attack": s["attack"],
              "summary": [s], "run": r["id"]} for r in rows for s in r["metrics"]["summary"]]
    result = {"cells": table, "config": {"models": comma_list(models), "compression": comma_list(compression),
                                         "attacks": comma_list(attacks), "n": n, "judges": comma_list(judges)}}
    run = RunDir.create(out, "attack-grid", result["config"])
    run.start()
    run.save_artifact("result", result)
    where = grid_page(table).save(run.path / "report.html")
    run.finish({f"{c['model']}|{c['compression']}|{c['attack']}|{s['judge']}": s["asr"] for c in table for s in c["summary"]})
    if json_out:
        emit_json(result)
        return
    print_table("attack success by compression", ["model", "compression", "attack", "judge", "ASR", "95% CI"],
                [(c["model"], c["compression"], c["attack"], s["judge"], f"{s['asr']:.0%}", f"[{s['lo']:.0%}, {s['hi']:.0%}]")
                 for c in table for s in c["summary"]])
    say_where(where)
