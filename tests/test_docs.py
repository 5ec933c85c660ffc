"""The Python blocks of README.md and docs/*.md run as written, on the real default model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_page_runs(page):
    namespace: dict = {}
    for block in python_blocks(page):  # blocks of one page share a namespace, like a notebook
        exec(compile(block, str(page), "exec"), namespace)
