"""``ray``: each run as a Ray Core remote task, on a cluster joined by address or a local instance started here.

Each run asks Ray for ``[resources] cpus, gpus, memory_gb``; Ray places it where those are free. The run
folders are written by the workers, so past one machine ``--root`` must be on a shared file system.
Based on https://docs.ray.io/en/latest/ray-core/tasks.html
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import ShoestringError
from ..runner import Job, crashed, error_line, execute
from .base import Executor

_GIB = 1024**3


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ShoestringError("the ray executor needs Ray, which is not installed",
                              "pip install 'shoestring[ray]', or use --executor local") from None
    return ray


def _options(resources: dict) -> dict:
    opts = {"num_cpus": float(resources.get("cpus", 1)), "num_gpus": float(resources.get("gpus", 0))}
    if resources.get("memory_gb"):
        opts["memory"] = int(float(resources["memory_gb"]) * _GIB)
    return opts


def _check_fits(ray, jobs: list[Job]) -> None:
    # Ray would wait forever for a run no node can hold; say so now instead
    have = ray.cluster_resources()
    for key, name, scale in (("cpus", "CPU", 1), ("gpus", "GPU", 1), ("memory_gb", "memory", _GIB)):
        need = max((float(j.resources.get(key) or 0) for j in jobs), default=0.0)
        if need * scale > have.get(name, 0.0):
            raise ShoestringError(f"resources.{key} = {need:g} per run, but the Ray cluster has {have.get(name, 0) / scale:g}",
                                  f"lower resources.{key} or join a bigger cluster with --address")


@dataclass
class RayExecutor(Executor):
    """Ray Core remote tasks. ``address`` joins a running cluster; without it a local instance is started
    (with ``num_cpus`` cores, default all) and shut down at the end."""

    name = "ray"
    address: str | None = None
    num_cpus: int | None = None

    @classmethod
    def from_options(cls, max_parallel: int | None = None, address: str | None = None) -> Executor:
        return cls(max_parallel=max_parallel, address=address)

    def _init(self, ray) -> bool:
        if ray.is_initialized():
            return False
        kwargs = dict(include_dashboard=False, log_to_driver=False)
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.num_cpus, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise ShoestringError(f"cannot start or join {where} ({error_line(err)})",
                                  "check `ray status` on the head node, or leave out --address") from None
        return True

    def execute(self, jobs: list[Job]) -> Iterator[dict]:
        ray = _import_ray()
        started = self._init(ray)
        try:
            _check_fits(ray, jobs)
            remote = ray.remote(max_retries=0)(execute)
            queue, refs = list(jobs), {}
            slots = self.max_parallel or len(jobs)  # Ray itself packs runs by their resources
            while queue or refs:
                while queue and len(refs) < slots:
                    job = queue.pop(0)
                    refs[remote.options(**_options(job.resources)).remote(job)] = job
                done, _ = ray.wait(list(refs), num_returns=1)
                job = refs.pop(done[0])
                try:
                    yield ray.get(done[0])
                except Exception as err:  # the worker died or the node was lost: only this run fails
                    yield crashed(job, f"ray worker failed ({error_line(err)})")
        finally:
            if started:
                ray.shutdown()
