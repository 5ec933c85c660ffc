"""``local``: each run in its own process on this machine, as many at once as there are cores (or ``max_parallel``).

Processes come from a *forkserver*: it imports shoestring once, then forks a fresh, single-threaded child
per run (no fork of a threaded parent, no per-run import cost). A child that dies without an answer
(segfault, OOM kill) fails only its own run.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait

from ..runner import Job, crashed, execute
from .base import Executor

_PRELOAD = ["shoestring.runs.runner"]


def _child(job: Job, conn) -> None:
    try:
        conn.send(execute(job))
    finally:
        conn.close()


def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" not in methods:  # Windows: spawn
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


@dataclass
class LocalExecutor(Executor):
    """A process per run on this machine; ``max_parallel`` caps how many run at once."""

    name = "local"

    def execute(self, jobs: list[Job]) -> Iterator[dict]:
        ctx, queue, running = _context(), list(jobs), {}  # running: connection -> (process, job)
        slots = self.slots(jobs)
        try:
            while queue or running:
                while queue and len(running) < slots:
                    job = queue.pop(0)
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_child, args=(job, send), name=f"shoestring-run-{job.id}", daemon=True)
                    proc.start()
                    send.close()  # the child holds the only write end: its exit makes recv readable
                    running[recv] = (proc, job)
                for conn in wait(list(running)):
                    proc, job = running.pop(conn)
                    yield self._collect(conn, proc, job)
        finally:
            for conn, (proc, job) in running.items():  # interrupted: stop the rest, say so in their folders
                proc.terminate()
                proc.join(5)
                conn.close()
                crashed(job, "interrupted: the sweep was stopped")

    @staticmethod
    def _collect(conn, proc, job: Job) -> dict:
        try:
            result = conn.recv()
        except EOFError:
            result = None
        finally:
            conn.close()
        proc.join()
        return result if result is not None else crashed(job, f"worker process died (exit code {proc.exitcode})")
