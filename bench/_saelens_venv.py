"""Build (once) and locate the SAELens venv used by the SAE training benchmark.

sae-lens 6.54.12 pulls transformer-lens 3.9, which cannot share the anchors venv (transformer-lens 4.x,
see ``bench/_anchors.py``), so SAELens gets its own venv at ``bench/.cache/saelens-venv``. The project
itself is *not* installed there: the SAELens side runs as a subprocess (``bench/_sae_anchor.py``) on
activations saved to a file.

    python bench/_saelens_venv.py          # create it if missing, print its python and versions
    python bench/_saelens_venv.py --force  # rebuild from scratch

Same technique as the anchors venv: torch goes in first, alone, as the local CPU wheel (an unpinned
torch would pull a multi-GB CUDA build); then sae-lens is installed with a constraints file that holds
torch (and transformers) at the pinned versions, so resolving sae-lens's dependencies can never
replace them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _anchors import CACHE, OFFLINE_ENV, TORCH, TRANSFORMERS, _run, stamp_venv  # noqa: E402  (reused helpers/pins)
from _anchors import installed_versions as _installed  # noqa: E402

VENV = CACHE / "saelens-venv"
STAMP = VENV / "saelens-installed.json"
CONSTRAINTS = CACHE / "saelens-constraints.txt"

SAE_LENS = "6.54.12"
REPORTED = ["torch", "transformers", "sae-lens", "transformer-lens", "safetensors", "numpy", "einops"]

__all__ = ["VENV", "SAE_LENS", "OFFLINE_ENV", "python_path", "installed_versions", "ensure"]


def python_path() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed_versions(py: Path | None = None) -> dict[str, str]:
    """The versions actually installed in the SAELens venv (importlib.metadata)."""
    return _installed(py or python_path(), REPORTED)


def ensure(force: bool = False) -> Path:
    """Create the venv if it is missing, incomplete or at other versions; return its python."""
    py = python_path()
    if STAMP.exists() and py.exists() and not force:
        stamp = json.loads(STAMP.read_text())
        if stamp.get("sae-lens") == SAE_LENS and (stamp.get("torch") or "").startswith(TORCH):
            return py
    if VENV.exists():
        shutil.rmtree(VENV)
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", VENV])
    CONSTRAINTS.write_text(f"torch=={TORCH}\ntransformers=={TRANSFORMERS}\n")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    # 1) torch first, alone: the local CPU wheel (find-links) satisfies the exact pin.
    _run(pip + [f"torch=={TORCH}"])
    # 2) sae-lens (and with it transformer-lens 3.9), torch/transformers held by the constraints file.
    _run(pip + ["-c", CONSTRAINTS, f"sae-lens=={SAE_LENS}"])
    return _stamp(py)


def _stamp(py: Path) -> Path:
    """Check the pins held and record what really installed."""
    return stamp_venv(py, STAMP, [("torch", TORCH), ("sae-lens", SAE_LENS)], "saelens", REPORTED)


if __name__ == "__main__":
    p = ensure(force="--force" in sys.argv)
    print(p)
    print(json.dumps(installed_versions(p), indent=2))
