"""Executors: where the runs of a sweep execute. A plain dict of name -> class; a duplicate name raises."""

from __future__ import annotations

from ...errors import ShoestringError, nearest
from .base import Executor
from .local import LocalExecutor
from .ray import RayExecutor

EXECUTORS: dict[str, type[Executor]] = {}


def register(cls: type[Executor]) -> type[Executor]:
    if cls.name in EXECUTORS:
        raise ShoestringError(f"executor '{cls.name}' is already registered", "pick another name")
    EXECUTORS[cls.name] = cls
    return cls


register(LocalExecutor)
register(RayExecutor)


def make_executor(name: str, max_parallel: int | None = None, address: str | None = None) -> Executor:
    """An executor by name, configured from the sweep CLI flags."""
    if name not in EXECUTORS:
        close = nearest(name, EXECUTORS) or sorted(EXECUTORS)
        raise ShoestringError(f"unknown executor '{name}'", f"use one of: {', '.join(close)}")
    if address and name != "ray":
        raise ShoestringError(f"--address {address} needs the ray executor", "add --executor ray")
    return EXECUTORS[name].from_options(max_parallel=max_parallel, address=address)


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "make_executor", "register"]
