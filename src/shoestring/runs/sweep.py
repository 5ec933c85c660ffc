"""Sweeps: one TOML file names a task, its fixed parameters, a grid and/or explicit runs, and resources.

.. code-block:: toml

    [sweep]
    name = "pi"
    task = "monte-carlo-pi"      # a registered task or "package.module:function"
    executor = "local"           # or "ray"

    [base]                       # fixed for every run
    n = 20000

    [grid]                       # cartesian product of the lists
    seed = [0, 1, 2]

    [[runs]]                     # explicit runs, added to the grid's (each on top of [base])
    n = 100
    seed = 7

    [resources]                  # per run
    cpus = 1
    gpus = 0
    memory_gb = 1

A rerun of the same spec does only the runs that are missing or failed: finished runs are found by id.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ShoestringError
from .executors import EXECUTORS, make_executor
from .identity import load_toml
from .rundir import RunDir, default_root
from .runner import Job, busy_elsewhere, make_job, row

_TABLES = {"sweep", "base", "grid", "runs", "resources"}
_SWEEP_KEYS = {"name", "task", "executor", "description"}
_RESOURCES = {"cpus": 1, "gpus": 0, "memory_gb": None}


@dataclass
class Spec:
    """A parsed sweep spec (see the module docstring for the TOML)."""

    task: str
    name: str = "sweep"
    executor: str = "local"
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)  # dotted key -> non-empty list
    runs: list = field(default_factory=list)
    resources: dict = field(default_factory=lambda: dict(_RESOURCES))
    description: str = ""


def _flatten(table: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _set(config: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        config = config.setdefault(p, {})
    config[leaf] = value


def _merge(base: dict, params: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for dotted, value in _flatten(params).items():
        _set(out, dotted, value)
    return out


def _check_keys(table, allowed, where: str) -> None:
    if not isinstance(table, dict):
        raise ShoestringError(f"'{where}' must be a table", f"write [{where}] followed by key = value lines")
    for key in table:
        if key not in allowed:
            raise ShoestringError(f"unknown key '{where}.{key}' in the sweep spec", f"allowed: {', '.join(sorted(allowed))}")


def parse_spec(doc: dict, default_name: str = "sweep") -> Spec:
    """Validate a spec dict (as read from TOML); every mistake names its key."""
    for key in doc:
        if key not in _TABLES:
            raise ShoestringError(f"unknown table '{key}' in the sweep spec", f"allowed: {', '.join(sorted(_TABLES))}")
    sweep = doc.get("sweep", {})
    _check_keys(sweep, _SWEEP_KEYS, "sweep")
    if not isinstance(sweep.get("task"), str) or not sweep["task"]:
        raise ShoestringError("the sweep spec has no 'sweep.task'", 'add task = "monte-carlo-pi" (or any registered task) under [sweep]')
    executor = sweep.get("executor", "local")
    if executor not in EXECUTORS:
        raise ShoestringError(f"sweep.executor = {executor!r} is not known", f"use one of: {', '.join(sorted(EXECUTORS))}")
    if not isinstance(doc.get("base", {}), dict):
        raise ShoestringError("'base' must be a table", "write [base] then key = value lines")
    grid = _flatten(doc.get("grid", {})) if isinstance(doc.get("grid", {}), dict) else None
    if grid is None:
        raise ShoestringError("'grid' must be a table of lists", "write [grid] then key = [value, ...]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ShoestringError(f"grid.{key} must be a non-empty list, got {values!r}", f"write {key} = [{values!r}] or move it to [base]")
    runs = doc.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ShoestringError("'runs' must be an array of tables", "write [[runs]] before each explicit run")
    resources = doc.get("resources", {})
    _check_keys(resources, _RESOURCES, "resources")
    for key, value in resources.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (key != "gpus" and value == 0):
            raise ShoestringError(f"resources.{key} = {value!r} is not a valid amount", f"give a {'non-negative' if key == 'gpus' else 'positive'} number")
    return Spec(task=sweep["task"], name=str(sweep.get("name", default_name)), executor=executor, base=doc.get("base", {}),
                grid=grid, runs=runs, resources={**_RESOURCES, **resources}, description=str(sweep.get("description", "")))


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and validate a sweep TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ShoestringError(f"no sweep spec at {path}", "pass the path of a .toml file (see docs/runs.md)")
    return parse_spec(load_toml(path.read_text(), str(path)), default_name=path.stem)


def points(spec: Spec) -> list[dict]:
    """The varying parameters of each run, in order: the grid's product, then the explicit runs."""
    keys = list(spec.grid)
    grid = [dict(zip(keys, values)) for values in itertools.product(*spec.grid.values())] if keys else []
    explicit = [_flatten(r) for r in spec.runs]
    return grid + explicit or [{}]


def expand(spec: Spec | dict | str | os.PathLike) -> list[dict]:
    """Every run's config: ``[base]`` with each grid point or explicit run on top (task defaults not yet added)."""
    spec = _as_spec(spec)
    return [_merge(spec.base, p) for p in points(spec)]


def _as_spec(spec) -> Spec:
    if isinstance(spec, Spec):
        return spec
    return parse_spec(spec) if isinstance(spec, dict) else load_spec(spec)


def plan(spec: Spec, root, executor: str) -> list[tuple[Job, dict]]:
    """One job per distinct run (same resolved config = same run), with the params that made it."""
    try:
        make_job(spec.task, {}, root)  # a bad task fails here, naming the key
    except ShoestringError as err:
        raise ShoestringError(f"sweep.task: {err.problem}", err.fix) from None
    jobs: dict[str, tuple[Job, dict]] = {}
    for params, config in zip(points(spec), expand(spec)):
        job = make_job(spec.task, config, root, name=spec.name, resources=spec.resources, executor=executor)
        jobs.setdefault(job.id, (job, params))
    return list(jobs.values())


def run_sweep(spec, executor: str | None = None, root=None, max_parallel: int | None = None, address: str | None = None,
              on_start: Callable[[int, int], None] | None = None, on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run every missing or failed run of a sweep; return the results table in spec order.

    Parameters
    ----------
    spec
        Path of the TOML spec, its parsed dict, or a :class:`Spec`.
    executor
        ``"local"`` or ``"ray"``; default: the spec's ``sweep.executor``.
    root
        Where run folders live (default ``$SHOESTRING_RUNS`` or ``./runs``).
    max_parallel
        At most this many runs at once (default: cores / ``resources.cpus``; Ray: what the cluster holds).
    address
        Ray only: join the cluster at this address instead of starting a local instance.
    on_start, on_result
        Progress hooks: ``on_start(total, to_run)`` once, ``on_result(row)`` as each run ends.

    Returns
    -------
    list[dict]
        One row per run: ``id``, ``params``, ``status``, ``metrics``, ``error``, ``skipped``, ``config``, ...
    """
    spec = _as_spec(spec)
    name = executor or spec.executor
    runner = make_executor(name, max_parallel=max_parallel, address=address)
    root = Path(root or default_root())
    planned = plan(spec, root, name)
    rows, todo = {}, []
    for job, _ in planned:
        existing = RunDir(root / job.id)
        if existing.status == "done" or busy_elsewhere(existing):
            rows[job.id] = row(existing, skipped=True)
        else:
            todo.append(job)
    if on_start:
        on_start(len(planned), len(todo))
    for result in runner.execute(todo) if todo else ():
        rows[result["id"]] = result
        if on_result:
            on_result(result)
    return [{"id": job.id, "params": params, **{k: v for k, v in rows[job.id].items() if k != "id"}} for job, params in planned]
