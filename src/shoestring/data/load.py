"""``load_corpus(spec)``: one entry point for every source kind."""

from __future__ import annotations

import glob
import itertools
from collections.abc import Iterator
from pathlib import Path

from ..errors import ShoestringError, nearest
from . import files, hf, tables
from .builtins import BUILTINS
from .corpus import Corpus, numbered

GLOB_CHARS = set("*?[")


def load_corpus(spec: str, *, text_column: str = "text", limit_docs: int | None = None,
                split_lines: bool = False) -> Corpus:
    """Load a corpus: documents in a deterministic order, read lazily (each iteration reads the source again).

    Parameters
    ----------
    spec
        One of:

        - a built-in name (offline): ``stdlib-code``, ``stdlib-prose``, ``bible-kjv``, ``austen``,
          ``austen-books`` (see :func:`list_builtins`);
        - a text file (``.txt``, ``.md``, or anything not below): one file = one document;
        - a folder: every ``.txt``/``.md`` file in it, recursively, sorted by path; or, if it was written by
          ``datasets``' ``save_to_disk``, that dataset (needs ``pip install datasets``);
        - a glob such as ``"notes/*.txt"`` (``**`` recurses): the matching files, sorted, each read by its kind;
        - ``.jsonl``, ``.csv``/``.tsv`` or ``.parquet``: one row = one document, text in ``text_column``;
        - ``hf:org/name``: a hub dataset's train split, streamed (needs ``datasets`` and network).
    text_column
        The column (key) that holds the text in tables and datasets.
    limit_docs
        Keep only the first ``limit_docs`` documents.
    split_lines
        For text files: one non-blank line = one document (source ``path:lineno``).

    Returns
    -------
    Corpus
        Documents ``Document(id, text, source)``; ids count from 0 in order. Empty texts are skipped.

    Raises
    ------
    ShoestringError
        Missing file, unknown built-in (with suggestions), missing text column (listing the columns),
        a built-in whose package is absent (with the install command), or no documents at all.
    """
    if limit_docs is not None and limit_docs < 1:
        raise ShoestringError(f"limit_docs={limit_docs} keeps no documents", "pass limit_docs >= 1, or None for all")
    items = _items(spec, text_column, split_lines)
    corpus = numbered(spec, items, limit_docs)
    if next(iter(corpus), None) is None:  # also surfaces a bad first row or a missing column now
        raise ShoestringError(f"corpus {spec!r} has no documents",
                              "point it at files with non-empty text, or pick another text_column")
    return corpus


def _items(spec: str, column: str, split_lines: bool):
    """A zero-argument function returning the ``(source, text)`` pairs of ``spec``; checks what it can now."""
    if spec in BUILTINS:
        builtin = BUILTINS[spec]
        if not builtin.is_available():
            raise ShoestringError(f"built-in corpus {spec!r} is not installed on this machine",
                                  f"run `{builtin.install}`")
        return builtin.documents
    if spec.startswith("hf:"):
        return lambda: hf.hub_dataset(spec[3:], column, list(BUILTINS))
    if GLOB_CHARS & set(spec):
        paths = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not paths:
            raise ShoestringError(f"corpus {spec!r} has no documents: no file matches it",
                                  "check the pattern (quote it in a shell so the shell does not expand it)")
        return lambda: itertools.chain.from_iterable(_file(p, column, split_lines) for p in paths)
    path = Path(spec).expanduser()
    if path.is_dir():
        if hf.is_saved_dataset(path):
            return lambda: hf.saved_dataset(path, column)
        found = files.folder_files(path)
        if not found:
            raise ShoestringError(f"corpus {spec!r} has no documents: no .txt or .md file in that folder",
                                  "point at a folder of .txt/.md files, or use a glob such as 'folder/*.jsonl'")
        return lambda: itertools.chain.from_iterable(files.text_file(p, split_lines) for p in found)
    if path.is_file():
        return lambda: _file(path, column, split_lines)
    raise _not_found(spec)


def _file(path: Path, column: str, split_lines: bool) -> Iterator[tuple[str, str]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl" or suffix == ".ndjson":
        return tables.jsonl(path, column)
    if suffix in (".csv", ".tsv"):
        return tables.csv_rows(path, column)
    if suffix == ".parquet":
        return tables.parquet(path, column)
    return files.text_file(path, split_lines)


def _not_found(spec: str) -> ShoestringError:
    names = ", ".join(BUILTINS)
    looks_like_name = "/" not in spec and "." not in spec and "\\" not in spec
    if looks_like_name:
        close = nearest(spec, BUILTINS)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        return ShoestringError(f"unknown built-in corpus {spec!r} (and no such file)", f"{hint}built-ins: {names}")
    return ShoestringError(f"no file or folder {spec!r}", f"check the path, or use a built-in corpus: {names}")
