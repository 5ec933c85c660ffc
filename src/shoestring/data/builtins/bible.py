"""The King James Bible from the Debian packages ``bible-kjv`` (the ``bible`` program) and ``bible-kjv-text``.

``bible -f gen1:1-rev22:21`` prints the 31,102 verses one per line, each prefixed with its reference
(``Ge1:1 In the beginning ...``, ``1Sm3:4 ...``); one chapter (1,189 of them) = one document.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ...errors import ShoestringError

DATA = Path("/usr/lib/bible.data")
INSTALL = "sudo apt-get install -y bible-kjv bible-kjv-text"
VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def program() -> str | None:
    return shutil.which("bible") or ("/usr/games/bible" if Path("/usr/games/bible").exists() else None)


def available() -> bool:
    return program() is not None and DATA.is_file()


def verses() -> list[tuple[str, str]]:
    """``(chapter reference, verse text)`` in canonical order, e.g. ``("Ge1", "In the beginning ...")``."""
    cmd = [program() or "bible", "-f", "-p", str(DATA.parent), "-d", DATA.name, "gen1:1-rev22:21"]
    run = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                         env={"PATH": "/usr/bin:/bin", "COLUMNS": "100000"})
    if run.returncode != 0 or not run.stdout.strip():
        raise ShoestringError(f"`{' '.join(cmd)}` failed: {(run.stderr or run.stdout).strip()[:200]}",
                              f"reinstall: {INSTALL}")
    out: list[tuple[str, str]] = []
    for line in run.stdout.splitlines():
        m = VERSE.match(line)
        if m:
            out.append((f"{m[1]}{m[2]}", m[4].strip()))
        elif line.strip() and out:  # a wrapped verse: glue the continuation back on
            out[-1] = (out[-1][0], f"{out[-1][1]} {line.strip()}")
    return out


def chapters() -> Iterator[tuple[str, str]]:
    """One chapter = one document (its verses, one per line), source ``bible-kjv:Ge1``."""
    current, lines = None, []
    for ref, text in verses():
        if ref != current and lines:
            yield f"bible-kjv:{current}", "\n".join(lines)
            lines = []
        current = ref
        lines.append(text)
    if lines:
        yield f"bible-kjv:{current}", "\n".join(lines)
