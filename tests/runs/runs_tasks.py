"""Tasks for the sweep tests, imported by worker processes through their dotted path ``runs_tasks:<name>``."""

from __future__ import annotations

import os
from pathlib import Path


def flaky(config: dict, run) -> dict:
    """Fails while the file ``config['poison']`` exists; else returns ``x`` squared."""
    if config.get("poison") and Path(config["poison"]).exists():
        raise RuntimeError(f"poisoned by {config['poison']}")
    return {"y": config["x"] ** 2, "attempt": run.attempt}


def crash(config: dict, run) -> dict:
    """Kills its own process without a word when ``config['die']`` (a segfault or OOM kill looks like this)."""
    if config.get("die"):
        os._exit(3)
    return {"ok": 1}
