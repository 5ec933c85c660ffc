"""docs/runs.md runs as written (its blocks share one namespace, like a notebook)."""

from __future__ import annotations

import re
from pathlib import Path

from shoestring.runs import TASKS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "runs.md"


def test_runs_page_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)
    finally:  # tests/test_docs.py runs the page again in this process: let it register the demo task anew
        TASKS.pop("square-demo", None)
    assert len(namespace["rows"]) == 5 and all(r["status"] == "done" for r in namespace["rows"])
