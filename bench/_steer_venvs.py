"""Build (once) and locate the venvs of the steering anchors, each in its own venv under ``bench/.cache``:

- ``repeng-venv``: repeng 0.4.0 (it pulls numpy 1.26, which the project's venv must not get), with torch
  and transformers held at the project's pins by a constraints file;
- ``steervec-venv``: steering-vectors (it pins transformers < 5), with the newest transformers 4.x it accepts.

Neither has the project installed: the anchor side runs as a subprocess (``bench/_steer_anchor.py``) on
the dequantised SmolLM2 folder, which plain ``AutoModelForCausalLM.from_pretrained`` loads.

    python bench/_steer_venvs.py [repeng|steervec] [--force]

Same technique as ``bench/_anchors.py``: torch goes in first, alone, as the local CPU wheel (an unpinned
torch would pull a multi-GB CUDA build), then the anchor with a constraints file that holds torch.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _anchors import CACHE, TORCH, TRANSFORMERS, _run, stamp_venv  # noqa: E402  (shared pins and helpers)
from _anchors import installed_versions as _installed  # noqa: E402

REPORTED = ["torch", "transformers", "repeng", "steering-vectors", "numpy", "accelerate", "safetensors", "tokenizers"]
VENVS = {
    # name: (package pin, extra constraints, extra packages)
    "repeng": ("repeng==0.4.0", [f"transformers=={TRANSFORMERS}"], []),
    "steervec": ("steering-vectors", ["transformers<5"], []),
}


def venv_dir(name: str) -> Path:
    return CACHE / f"{name}-venv"


def python_path(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def installed_versions(name: str) -> dict[str, str | None]:
    return _installed(python_path(name), REPORTED)


def ensure(name: str, force: bool = False) -> Path:
    """Create the venv if missing (or at other versions); return its python. Raises if pip fails."""
    pkg, constraints, extra = VENVS[name]
    py, stamp = python_path(name), venv_dir(name) / "installed.json"
    if stamp.exists() and py.exists() and not force:
        return py
    if venv_dir(name).exists():
        shutil.rmtree(venv_dir(name))
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", venv_dir(name)])
    cfile = CACHE / f"{name}-constraints.txt"
    cfile.write_text("\n".join([f"torch=={TORCH}", *constraints]) + "\n")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    _run(pip + [f"torch=={TORCH}"])
    _run(pip + ["-c", cfile, pkg, *extra])
    anchor = pkg.split("==")[0]
    return stamp_venv(py, stamp, [("torch", TORCH), (anchor, pkg.split("==")[1] if "==" in pkg else "")], name, REPORTED)


if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(VENVS)
    for n in names:
        p = ensure(n, force="--force" in sys.argv)
        print(p, json.dumps(installed_versions(n)))
