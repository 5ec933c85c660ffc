"""``shoestring runs ls|show|compare|sql`` and ``shoestring sweep SPEC.toml``."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from ._common import JsonOpt, console, emit_json, err_console

RootOpt = typer.Option(None, "--root", help="runs folder (default: $SHOESTRING_RUNS or ./runs)")

runs_app = typer.Typer(help="List, show, compare and query runs (DuckDB over every run folder).", no_args_is_help=True)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return "" if v is None else str(v)


def _print_rows(rows: list[dict], title: str) -> None:
    t = Table(title=title)
    for col in rows[0] if rows else ["(no rows)"]:
        t.add_column(col, overflow="fold", no_wrap=col in ("id", "run_id"))
    for r in rows:
        t.add_row(*(_cell(v) for v in r.values()))
    console.print(t)


@runs_app.command("ls")
def ls(root: str = RootOpt, json_out: bool = JsonOpt) -> None:
    """One line per run: id, name, status, when, how long, and its metrics."""
    from ..runs import query

    rows = query("SELECT * FROM runs ORDER BY started NULLS LAST, id", root=root)
    if json_out:
        return emit_json(rows)
    short = [{"id": r["id"], "status": r["status"], "seconds": r["duration_s"],
              **{k[8:]: v for k, v in r.items() if k.startswith("metrics.")}} for r in rows]
    _print_rows(short, f"{len(rows)} runs")


@runs_app.command("show")
def show(run_id: str = typer.Argument(..., help="run id or a unique prefix"), root: str = RootOpt, json_out: bool = JsonOpt) -> None:
    """Everything about one run: status, config, environment, metrics, samples and artifacts."""
    from ..runs import find

    run = find(run_id, root)
    doc = {"id": run.id, **run.info, "path": str(run.path), "config": run.config, "env": run.env, "metrics": run.metrics,
           "samples": run.samples().num_rows,
           "artifacts": sorted(p.name for p in (run.path / "artifacts").iterdir()) if (run.path / "artifacts").is_dir() else []}
    if json_out:
        return emit_json(doc)
    for section in ("config", "env", "metrics"):
        t = Table(title=f"{run.id}: {section}", show_header=False)
        for k, v in doc[section].items():
            t.add_row(k, _cell(v))
        console.print(t)
    console.print(f"status: {doc.get('status')}" + (f" ({doc['error']})" if doc.get("error") else "")
                  + f", attempt {doc.get('attempt')}, {doc['samples']} samples, artifacts: {', '.join(doc['artifacts']) or 'none'}")


@runs_app.command("compare")
def compare(run_ids: list[str] = typer.Argument(..., help="two or more run ids (or unique prefixes)"),
            all_keys: bool = typer.Option(False, "--all", help="show config keys that are equal too"),
            root: str = RootOpt, json_out: bool = JsonOpt) -> None:
    """Config differences and metrics side by side."""
    from ..runs import compare as compare_runs

    doc = compare_runs(run_ids, root, all_keys=all_keys)
    if json_out:
        return emit_json(doc)
    t = Table(title=f"{len(doc['ids'])} runs ({len(doc['same'])} config keys equal{'' if all_keys else ', hidden'})")
    t.add_column("")
    for i in doc["ids"]:
        t.add_column(i, overflow="fold")
    t.add_row("status", *doc["status"])
    for section in ("config", "metrics"):
        t.add_section()
        for k, values in doc[section].items():
            t.add_row(f"{section}.{k}", *(_cell(v) for v in values))
    console.print(t)


@runs_app.command("sql")
def sql(statement: str = typer.Argument(..., help='e.g. \'SELECT "config.seed", "metrics.estimate" FROM runs\''),
        root: str = RootOpt, json_out: bool = JsonOpt) -> None:
    """Query the runs and samples views with DuckDB (quote dotted columns: "config.n")."""
    from ..runs import query

    rows = query(statement, root=root)
    if json_out:
        return emit_json(rows)
    _print_rows(rows, f"{len(rows)} rows")


def sweep(spec: str = typer.Argument(..., help="sweep spec, a .toml file (see docs/runs.md)"),
          executor: str = typer.Option(None, "--executor", help="local or ray (default: the spec's sweep.executor)"),
          address: str = typer.Option(None, "--address", help="ray: join the cluster at this address"),
          root: str = RootOpt,
          max_parallel: int = typer.Option(None, "--max-parallel", min=1, help="at most N runs at once"),
          json_out: bool = JsonOpt) -> None:
    """Run a sweep; only missing or failed runs execute, finished ones are found by their id."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..runs import run_sweep

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, disable=json_out)
    state = {}

    def on_start(total: int, todo: int) -> None:  # shown only once the spec is valid: errors stay one line
        bar.start()
        state["task"] = bar.add_task(f"sweep ({total - todo} done before)", total=todo)

    def on_result(row: dict) -> None:
        bar.advance(state["task"])
        mark = "[green]done[/]" if row["status"] == "done" else f"[red]{row['status']}[/] {row.get('error') or ''}"
        if not json_out:
            bar.console.print(f"{row['id']}: {mark}")

    try:
        rows = run_sweep(spec, executor=executor, root=root, max_parallel=max_parallel, address=address,
                         on_start=on_start, on_result=on_result)
    finally:
        if state:
            bar.stop()
    if json_out:
        return emit_json(rows)
    metric_keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    _print_rows([{"id": r["id"], **{k: _cell(v) for k, v in r["params"].items()},
                  "status": r["status"] + (" (skipped)" if r["skipped"] else ""),
                  **{k: r["metrics"].get(k) for k in metric_keys}} for r in rows],
                f"{sum(r['status'] == 'done' for r in rows)}/{len(rows)} runs done")
    failed = [r for r in rows if r["status"] == "failed"]
    for r in failed:
        err_console.print(f"[red]failed[/] {r['id']}: {r['error']}")
