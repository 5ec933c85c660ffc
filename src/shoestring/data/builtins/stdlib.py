"""Built-ins from the Python standard library: its own source code, and its prose (pydoc topics)."""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from ..files import read_text

# folders that hold test suites or third-party code, not the standard library itself
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """The standard library's .py files, sorted by relative path, without test suites or site-packages."""
    root = stdlib_dir()
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]  # prune: site-packages can be huge
        rel = Path(folder).relative_to(root)
        out += [(rel / n).as_posix() for n in names if n.endswith(".py") and not n.startswith("test_")]
    return [root / r for r in sorted(out)]


def code_available() -> bool:
    return (stdlib_dir() / "os.py").is_file()


def code() -> Iterator[tuple[str, str]]:
    """One .py file = one document, source ``stdlib-code:json/decoder.py``."""
    root = stdlib_dir()
    for path in stdlib_files():
        text = read_text(path)
        if text.strip():
            yield f"stdlib-code:{path.relative_to(root).as_posix()}", text


def prose_available() -> bool:
    return importlib.util.find_spec("pydoc_data") is not None


def prose() -> Iterator[tuple[str, str]]:
    """One pydoc topic (``pydoc_data.topics.topics``) = one document, sorted by topic name."""
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield f"stdlib-prose:{key}", topics[key]
