"""Tabular sources with a text column: JSONL, CSV (and TSV), Parquet (via pyarrow). One row = one document."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import ShoestringError


def missing_column(path: object, column: str, columns) -> ShoestringError:
    have = ", ".join(map(str, columns)) or "(none)"
    return ShoestringError(f"{path} has no text column {column!r}", f"pass text_column= one of: {have}")


def _as_text(value) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def json_lines(path) -> Iterator[tuple[int, object]]:
    """``(lineno, object)`` for each non-blank line of a JSON-lines file; a bad line is one clear error."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ShoestringError(f"{path}:{lineno} is not valid JSON ({e.msg})",
                                      "fix that line; JSONL needs one JSON object per line") from None
            yield lineno, obj


def jsonl(path: Path, column: str) -> Iterator[tuple[str, str]]:
    """Rows of a JSON-lines file (``path:lineno``); blank lines and empty texts are skipped."""
    for lineno, row in json_lines(path):
        if not isinstance(row, dict) or column not in row:
            raise missing_column(f"{path}:{lineno}", column, row.keys() if isinstance(row, dict) else [])
        text = _as_text(row[column])
        if text.strip():
            yield f"{path}:{lineno}", text


def csv_rows(path: Path, column: str) -> Iterator[tuple[str, str]]:
    """Rows of a CSV file with a header (``path:row``, the first data row being 1); ``.tsv`` is tab-separated."""
    csv.field_size_limit(2**31 - 1)  # documents can be long
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        if column not in (reader.fieldnames or []):
            raise missing_column(path, column, reader.fieldnames or [])
        for row_no, row in enumerate(reader, start=1):
            text = _as_text(row[column])
            if text.strip():
                yield f"{path}:{row_no}", text


def parquet(path: Path, column: str, batch_rows: int = 1024) -> Iterator[tuple[str, str]]:
    """Rows of a Parquet file (``path#row``, from 0), read in batches of ``batch_rows``."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ShoestringError(f"reading {path} needs pyarrow", "run `pip install pyarrow`") from None
    f = pq.ParquetFile(path)
    if column not in f.schema_arrow.names:
        raise missing_column(path, column, f.schema_arrow.names)
    row = 0
    for batch in f.iter_batches(batch_size=batch_rows, columns=[column]):
        for value in batch.column(0).to_pylist():
            text = _as_text(value)
            if text.strip():
                yield f"{path}#{row}", text
            row += 1
