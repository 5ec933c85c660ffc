"""Registries are plain dicts of name -> class or instance; adding a name twice is an error."""

from __future__ import annotations

from typing import TypeVar

V = TypeVar("V")


def add(registry: dict, name: str, value: V, kind: str = "entry") -> V:
    """``registry[name] = value``, refusing a duplicate name (two modules claiming one name is a bug)."""
    if name in registry:
        raise ValueError(f"{kind} {name!r} is registered twice")
    registry[name] = value
    return value
