"""The executor base class: subclasses override :meth:`Executor.execute`, one method."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..runner import Job


@dataclass
class Executor:
    """Runs jobs somewhere and yields one result row per job as each one ends (any order).

    A subclass states only where runs go; :func:`shoestring.runs.sweep.run_sweep` owns the plumbing
    (planning, skipping finished runs, ordering the table). Each row comes from
    :func:`shoestring.runs.runner.execute` in the worker, or :func:`~shoestring.runs.runner.crashed`
    when the worker died.
    """

    name: ClassVar[str] = "base"
    max_parallel: int | None = None

    @classmethod
    def from_options(cls, max_parallel: int | None = None, address: str | None = None) -> Executor:
        return cls(max_parallel=max_parallel)

    def execute(self, jobs: list[Job]) -> Iterator[dict]:
        """Run every job in ``jobs``; yield each one's row as it finishes."""
        raise NotImplementedError

    def slots(self, jobs: list[Job]) -> int:
        """How many runs at once: ``max_parallel``, else the cores divided by the cpus one run asks for."""
        if self.max_parallel:
            return max(1, int(self.max_parallel))
        per_run = max((float(j.resources.get("cpus", 1)) for j in jobs), default=1.0)
        return max(1, int((os.cpu_count() or 1) // max(per_run, 1e-9)))
