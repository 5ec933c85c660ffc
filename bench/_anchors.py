"""Build (once) and locate the anchors venv used by the side-by-side benchmarks.

The anchor libraries (TransformerLens, nnsight) live in their own venv at
``bench/.cache/anchors-venv`` so they never disturb the project's ``.venv``.
The project itself is installed there editable, so one bench process can run
every contender on the same model objects.

    python bench/_anchors.py          # create it if missing, print its python
    python bench/_anchors.py --force  # rebuild from scratch

torch and transformers are pinned (torch is the local CPU wheel; an unpinned
torch would pull a multi-GB CUDA build); a constraints file keeps pip from
changing them while it resolves the anchors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
VENV = CACHE / "anchors-venv"
STAMP = VENV / "anchors-installed.json"

TORCH = "2.13.0"
TRANSFORMERS = "5.23.0"
ANCHORS = {"transformer-lens": "4.3.0", "nnsight": "0.8.1"}
REPORTED = ["torch", "transformers", "transformer-lens", "transformer_lens", "nnsight", "shoestring", "accelerate"]


def python_path() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str]) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def installed_versions(py: Path | None = None) -> dict[str, str | None]:
    """The versions that are actually installed in the anchors venv (importlib.metadata)."""
    py = py or python_path()
    code = (
        "import json, importlib.metadata as m\n"
        f"names = {REPORTED!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def ensure(force: bool = False) -> Path:
    """Create the venv if it is missing or incomplete; return its python."""
    py = python_path()
    if STAMP.exists() and py.exists() and not force:
        return py
    if VENV.exists():
        shutil.rmtree(VENV)
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", VENV])
    constraints = CACHE / "anchors-constraints.txt"
    constraints.write_text(f"torch=={TORCH}\ntransformers=={TRANSFORMERS}\n")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    # 1) torch first, alone: the local CPU wheel (find-links) satisfies the exact pin.
    _run(pip + [f"torch=={TORCH}"])
    # 2) transformers and the anchors, with torch/transformers held by the constraints file.
    _run(pip + ["-c", constraints, f"transformers=={TRANSFORMERS}"]
         + [f"{k}=={v}" for k, v in ANCHORS.items()])
    # 3) the project itself, editable, same constraints (its deps must not move torch either).
    _run(pip + ["-c", constraints, "-e", ROOT])
    versions = installed_versions(py)
    bad = [n for n, want in [("torch", TORCH), ("transformers", TRANSFORMERS)]
           if not (versions.get(n) or "").startswith(want)]
    if bad:
        raise RuntimeError(f"anchors venv has the wrong {bad}: {versions}")
    STAMP.write_text(json.dumps(versions, indent=2) + "\n")
    print("anchors venv ready:", json.dumps(versions), flush=True)
    return py


if __name__ == "__main__":
    p = ensure(force="--force" in sys.argv)
    print(p)
    print(json.dumps(installed_versions(p), indent=2))
