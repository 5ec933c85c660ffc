"""Execute one run where it lands (this process, a pool worker or a Ray worker) and describe the outcome.

A :class:`Job` is everything a fresh process needs: the run id, the task's import path, the resolved
config and the root. :func:`execute` records success or failure in the run directory and never raises
for a task's error, so one failing run loses no other.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ShoestringError
from .identity import clean_config, run_id
from .rundir import RunDir, default_root
from .tasks import ref, resolve, resolve_config


@dataclass
class Job:
    """One run to do. Picklable, so it travels to pool and Ray workers."""

    id: str
    task: str  # as the user named it (registry name or dotted path); part of the run id
    ref: str  # "module:qualname" a fresh process imports the function by
    config: dict
    root: str
    name: str
    resources: dict = field(default_factory=dict)
    executor: str = "inline"


def make_job(task: str, config: dict | None = None, root=None, name: str | None = None,
             resources: dict | None = None, executor: str = "inline") -> Job:
    """Resolve ``task`` and its defaults into a :class:`Job` (raises :class:`ShoestringError` on a bad task)."""
    fn = resolve(task)
    if "<" in fn.__qualname__:
        raise ShoestringError(f"task '{task}' is a lambda or a nested function, which a worker process cannot import",
                              "define it at module level in an importable module")
    config = clean_config(resolve_config(task, config or {}))
    rid = run_id(task, config)
    return Job(id=rid, task=task, ref=ref(fn), config=config, root=str(root or default_root()), name=name or rid,
               resources=dict(resources or {}), executor=executor)


def error_line(err: BaseException) -> str:
    """``Type: message`` squeezed onto one line."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:500]


def row(run: RunDir, skipped: bool = False) -> dict:
    """The results-table row of a run."""
    info = run.info
    done = info.get("status") == "done"
    return {"id": run.id, "name": info.get("name"), "task": info.get("task"), "status": info.get("status"),
            "metrics": run.metrics if done else {}, "error": info.get("error"), "attempt": info.get("attempt", 0),
            "skipped": skipped, "config": run.config, "path": str(run.path)}


def execute(job: Job) -> dict:
    """Run ``job`` here: mark it running, call the task, write metrics and status; return its row."""
    from .tasks import _from_path

    run = RunDir.create(job.root, job.task, job.config, name=job.name)
    run.start(name=job.name, executor=job.executor)
    try:
        metrics = _from_path(job.ref)(dict(job.config), run)
        run.finish({} if metrics is None else metrics)
    except KeyboardInterrupt:
        run.fail("KeyboardInterrupt: interrupted")
        raise
    except Exception as err:  # a task's failure is data: record it, lose nothing else
        run.fail(error_line(err))
    return row(run)


def crashed(job: Job, message: str) -> dict:
    """Record a run whose worker died without an answer (segfault, OOM kill, lost node) as failed."""
    run = RunDir.create(job.root, job.task, job.config, name=job.name)
    run.fail(message)
    return row(run)


def busy_elsewhere(run: RunDir) -> bool:
    """True when another live process on this host is running ``run`` right now (so do not start it twice)."""
    info = run.info
    if info.get("status") != "running" or info.get("host") != socket.gethostname() or info.get("pid") in (None, os.getpid()):
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    return True


def run(task: str, config: dict | None = None, root=None, name: str | None = None, rerun: bool = False) -> dict:
    """Run ``task`` with ``config`` in this process, unless the same run already finished.

    Parameters
    ----------
    task
        A registered name (``shoestring.runs.TASKS``) or ``"package.module:function"``.
    config
        Parameters; the task's defaults fill the rest. The resolved config decides the run id.
    root
        Where run folders live (default ``$SHOESTRING_RUNS`` or ``./runs``).
    rerun
        Run again even when the run is done.

    Returns
    -------
    dict
        The row: ``id``, ``status``, ``metrics``, ``error``, ``skipped`` (True when a finished run was found), ...

    Examples
    --------
    >>> from shoestring.runs import run
    >>> first = run("monte-carlo-pi", {"n": 10_000, "seed": 1}, root="/tmp/runs")   # doctest: +SKIP
    >>> again = run("monte-carlo-pi", {"n": 10_000, "seed": 1}, root="/tmp/runs")   # doctest: +SKIP
    >>> again["skipped"], again["metrics"] == first["metrics"]                      # doctest: +SKIP
    (True, True)
    """
    job = make_job(task, config, root, name)
    existing = RunDir(Path(job.root) / job.id)
    if existing.status == "done" and not rerun:
        return row(existing, skipped=True)
    return execute(job)
