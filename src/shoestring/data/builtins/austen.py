"""Jane Austen's six novels from the Debian package ``r-cran-janeaustenr`` (an R lazy-load database).

The package need not be installed (that pulls in R): unpacking its .deb under
``$SHOESTRING_HOME/debs`` (default ``~/.cache/shoestring/debs``) is enough::

    mkdir -p ~/.cache/shoestring/debs && cd ~/.cache/shoestring/debs \
        && apt-get download r-cran-janeaustenr && dpkg -x r-cran-janeaustenr_*.deb .
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ...models.bundled import home
from .rdata import read_lazyload

INSTALL = ("mkdir -p ~/.cache/shoestring/debs && cd ~/.cache/shoestring/debs && apt-get download "
           "r-cran-janeaustenr && dpkg -x r-cran-janeaustenr_*.deb .")
# publication order
BOOKS = {"sensesensibility": "Sense and Sensibility", "prideprejudice": "Pride and Prejudice",
         "mansfieldpark": "Mansfield Park", "emma": "Emma", "northangerabbey": "Northanger Abbey",
         "persuasion": "Persuasion"}
HEADING = re.compile(r"^(CHAPTER|Chapter)\s+[0-9IVXLC]+\.?\s*$")
VOLUME = re.compile(r"^VOLUME\s+[IVX]+\s*$")


def database() -> Path | None:
    """The ``Rdata`` base path (without ``.rdx``/``.rdb``), unpacked or installed; None when absent."""
    libraries = [home() / "debs" / "usr/lib/R/site-library", Path("/usr/lib/R/site-library"),
                 Path("/usr/lib/R/library"), Path("/usr/local/lib/R/site-library")]
    for lib in libraries:
        base = lib / "janeaustenr" / "data" / "Rdata"
        if base.with_suffix(".rdx").is_file() and base.with_suffix(".rdb").is_file():
            return base
    return None


def available() -> bool:
    return database() is not None


def novels() -> dict[str, list[str]]:
    """Each novel's lines, as the R package stores them (wrapped at ~70 characters, blank between paragraphs)."""
    data = read_lazyload(database())
    return {key: data[key] for key in BOOKS}


def reflow(lines: list[str]) -> str:
    """Join wrapped lines into paragraphs separated by a blank line."""
    paragraphs, cur = [], []
    for line in lines + [""]:
        if line and line.strip():
            cur.append(line.strip())
        elif cur:
            paragraphs.append(" ".join(cur))
            cur = []
    return "\n\n".join(paragraphs)


def chapters() -> Iterator[tuple[str, str]]:
    """One chapter = one document (front matter dropped), source ``austen:emma:12`` (chapters numbered 1, 2, ...
    through the book, also across Emma's volumes)."""
    for key, lines in novels().items():
        number, body = 0, None
        for line in lines:
            if HEADING.match(line.strip()):
                if body is not None and reflow(body):
                    yield f"austen:{key}:{number}", reflow(body)
                number, body = number + 1, []
            elif body is not None and not VOLUME.match(line.strip()):
                body.append(line)
        if body is not None and reflow(body):
            yield f"austen:{key}:{number}", reflow(body)


def books() -> Iterator[tuple[str, str]]:
    """One novel = one document, in publication order, source ``austen:emma``."""
    for key, lines in novels().items():
        yield f"austen:{key}", reflow(lines)
