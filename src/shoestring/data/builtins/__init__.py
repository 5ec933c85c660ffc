"""Built-in corpora that work offline: a registry (a plain dict) of name -> :class:`Builtin`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import austen, bible, stdlib
from ...registry import add


@dataclass(frozen=True)
class Builtin:
    """A built-in corpus: what it is, how to read it, how to tell it is there, and how to install it."""

    name: str
    description: str
    documents: Callable[[], Iterable[tuple[str, str]]]  # -> (source, text) pairs
    is_available: Callable[[], bool]
    install: str  # the exact command that makes it available


@dataclass(frozen=True)
class BuiltinInfo:
    """One row of :func:`list_builtins`."""

    name: str
    description: str
    available: bool
    install: str


BUILTINS: dict[str, Builtin] = {}


def register(builtin: Builtin) -> Builtin:
    return add(BUILTINS, builtin.name, builtin, "built-in corpus")


register(Builtin("stdlib-code", "Python standard library sources (.py, no test suites); one file = one document",
                 stdlib.code, stdlib.code_available, "(part of Python)"))
register(Builtin("stdlib-prose", "Python's pydoc topics (language reference prose); one topic = one document",
                 stdlib.prose, stdlib.prose_available, "(part of Python; on Debian: apt-get install libpython3-stdlib)"))
register(Builtin("bible-kjv", "King James Bible, 1,189 chapters; one chapter = one document",
                 bible.chapters, bible.available, bible.INSTALL))
register(Builtin("austen", "Jane Austen's six novels, 269 chapters; one chapter = one document",
                 austen.chapters, austen.available, austen.INSTALL))
register(Builtin("austen-books", "Jane Austen's six novels; one novel = one document",
                 austen.books, austen.available, austen.INSTALL))


def list_builtins() -> list[BuiltinInfo]:
    """Every built-in corpus: name, description, whether it is available here, and how to install it."""
    return [BuiltinInfo(b.name, b.description, bool(b.is_available()), b.install) for b in BUILTINS.values()]
