"""Shared CLI plumbing: options, JSON output, loading with a progress note."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)

ModelArg = typer.Argument("smollm2-135m", help="alias (see `shoestring models`), folder, .gguf file or hub id")
DtypeOpt = typer.Option("float32", "--dtype", help="float32, bfloat16, float16 or auto")
DeviceOpt = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto")
JsonOpt = typer.Option(False, "--json", help="print machine-readable JSON instead of tables")


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def load_model(spec: str, dtype: str, device: str, quiet: bool = False):
    import shoestring

    if quiet:
        return shoestring.load(spec, dtype=dtype, device=device)
    with err_console.status(f"loading {spec}..."):
        return shoestring.load(spec, dtype=dtype, device=device)


def comma_list(text: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (a comma-separated option)."""
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def print_table(title: str, columns, rows) -> None:
    """A rich table of string cells."""
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    console.print(t)
