"""Tasks: what a run does. A plain dict of name -> function; a duplicate name raises.

A task is ``fn(config: dict, run: RunDir) -> dict`` of metrics; it may write samples and artifacts
through ``run``. Register one with :func:`register` (optionally with defaults, which become part of the
resolved config and so of the run id), or name any module-level function by its dotted path
``"package.module:function"``.

>>> from shoestring.runs.tasks import register
>>> @register("square", defaults={"x": 3})        # doctest: +SKIP
... def square(config, run):
...     return {"y": config["x"] ** 2}
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ...errors import ShoestringError, nearest

TASKS: dict[str, Callable] = {}

# Modules that register more tasks when imported (the ML tasks add themselves here); imported on a miss.
TASK_MODULES: list[str] = []


def register(name: str, defaults: dict | None = None) -> Callable[[Callable], Callable]:
    """Decorator: add ``fn`` to :data:`TASKS` under ``name``; ``defaults`` fill keys the config leaves out."""

    def add(fn: Callable) -> Callable:
        if name in TASKS:
            raise ShoestringError(f"task '{name}' is already registered ({ref(TASKS[name])})", "pick another name")
        fn.defaults = dict(defaults or {})
        TASKS[name] = fn
        return fn

    return add


def ref(fn: Callable) -> str:
    """The dotted path ``module:qualname`` a fresh process imports ``fn`` by."""
    return f"{fn.__module__}:{fn.__qualname__}"


def _load_plugins() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def _from_path(path: str) -> Callable:
    module_name, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ShoestringError(f"cannot import task '{path}' ({err})",
                              "check the module is importable (installed or on PYTHONPATH) and the name") from None
    if not callable(obj):
        raise ShoestringError(f"task '{path}' is not callable", "point at a function fn(config, run) -> dict")
    return obj


def resolve(task: str) -> Callable:
    """The function for a registered name or a ``"package.module:function"`` path.

    Raises :class:`ShoestringError` with the nearest registered names for an unknown one.
    """
    if ":" in task:
        return _from_path(task)
    if task not in TASKS:
        _load_plugins()
    if task not in TASKS:
        close = nearest(task, TASKS)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known tasks: {', '.join(sorted(TASKS))}"
        raise ShoestringError(f"unknown task '{task}'", f"{hint} (or give a dotted path 'package.module:function')")
    return TASKS[task]


def resolve_config(task: str, config: dict) -> dict:
    """``config`` on top of the task's registered defaults: the resolved config a run is identified by."""
    return {**getattr(resolve(task), "defaults", {}), **config}


from . import matmul, monte_carlo  # noqa: E402,F401  (built-in tasks register themselves)
