"""Run identity: the id of a run is a hash of its task and resolved config, so the same ask finds the same run.

>>> run_id("monte-carlo-pi", {"n": 1000, "seed": 0})
'monte-carlo-pi-...'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import sys

from ..errors import ShoestringError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_SCALARS = (str, int, float, bool, _dt.datetime, _dt.date, _dt.time)


def clean_config(config: dict, where: str = "config") -> dict:
    """A copy of ``config`` that TOML can hold: ``None`` values dropped (= not set), tuples made lists.

    Raises :class:`ShoestringError` naming the key of any value TOML cannot store.
    """
    if not isinstance(config, dict):
        raise ShoestringError(f"{where} must be a table (dict), got {type(config).__name__}", "pass key = value pairs")
    return {str(k): _clean(v, f"{where}.{k}") for k, v in config.items() if v is not None}


def _clean(value, where: str):
    if isinstance(value, dict):
        return clean_config(value, where)
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, _SCALARS):
        return value
    raise ShoestringError(f"{where} = {value!r} cannot be stored in config.toml ({type(value).__name__})",
                          "use numbers, strings, booleans, lists or tables")


def canonical(task: str, config: dict) -> str:
    """The canonical JSON text of a run's identity (sorted keys, no spaces)."""
    return json.dumps({"task": task, "config": config}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)


def slug(task: str) -> str:
    """A file-name-safe short form of a task name or dotted path (``pkg.mod:fn`` -> ``fn``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", task.split(":")[-1]).strip("-") or "run"


def run_id(task: str, config: dict) -> str:
    """``<task>-<12 hex digits>``: stable across machines, processes and executors for the same config."""
    digest = hashlib.sha256(canonical(task, clean_config(config)).encode()).hexdigest()
    return f"{slug(task)}-{digest[:12]}"


def dump_toml(obj: dict) -> str:
    """TOML text of ``obj`` (keys sorted for stable files)."""
    import tomli_w

    return tomli_w.dumps(_sorted(obj))


def _sorted(obj):
    return {k: _sorted(obj[k]) for k in sorted(obj)} if isinstance(obj, dict) else obj


def load_toml(text: str, where: str) -> dict:
    """Parse TOML text; a syntax error becomes one :class:`ShoestringError` line naming ``where``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ShoestringError(f"{where} is not valid TOML ({err})", "fix the line it names") from None
