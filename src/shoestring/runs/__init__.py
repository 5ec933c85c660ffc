"""Run directories, the results index and sweeps.

>>> from shoestring.runs import run, run_sweep, query
>>> run("monte-carlo-pi", {"n": 10_000, "seed": 0}, root="/tmp/runs")                 # doctest: +SKIP
>>> run_sweep("pi.toml", root="/tmp/runs")                                            # doctest: +SKIP
>>> query('SELECT "config.seed", "metrics.estimate" FROM runs', root="/tmp/runs")     # doctest: +SKIP

See docs/runs.md.
"""

from __future__ import annotations

from . import atomic
from .executors import EXECUTORS, Executor, LocalExecutor, RayExecutor
from .identity import run_id
from .index import compare, connect, find, query, runs_table, scan
from .rundir import RunDir, default_root
from .runner import Job, run
from .sweep import Spec, expand, load_spec, parse_spec, run_sweep
from .tasks import TASKS, register as register_task, resolve as resolve_task

__all__ = ["EXECUTORS", "TASKS", "Executor", "Job", "LocalExecutor", "RayExecutor", "RunDir", "Spec", "atomic",
           "compare", "connect", "default_root", "expand", "find", "load_spec", "parse_spec", "query", "register_task",
           "resolve_task", "run", "run_id", "run_sweep", "runs_table", "scan"]
