"""Plain-text sources: one file, a folder of .txt/.md files, or a glob; one file (or one line) = one document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

TEXT_SUFFIXES = (".txt", ".md")


def read_text(path: Path) -> str:
    """A file's text: UTF-8, undecodable bytes replaced (never fails on odd bytes)."""
    return path.read_bytes().decode("utf-8", errors="replace")


def text_file(path: Path, split_lines: bool = False) -> Iterator[tuple[str, str]]:
    """``(source, text)`` for one text file: the whole file, or each non-blank line (``path:lineno``)."""
    text = read_text(path)
    if not split_lines:
        if text.strip():
            yield str(path), text
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield f"{path}:{lineno}", line


def folder_files(folder: Path) -> list[Path]:
    """Every .txt/.md file under ``folder``, recursively, sorted by relative path (hidden files skipped)."""
    found = [p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()]
    found = [p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
