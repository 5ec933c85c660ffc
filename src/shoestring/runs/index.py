"""The results index: every run under a root, queried together with DuckDB.

Two views:

``runs``
    one row per run: ``id, name, task, status, error, attempt, started, ended, duration_s, host, path``,
    then each config key as a column ``"config.<key>"`` (nested keys dotted) and each metric as ``"metrics.<key>"``.
    Dotted names need double quotes in SQL: ``SELECT "config.n", "metrics.abs_error" FROM runs``.
``samples``
    the rows of every ``samples.parquet``, with a ``run_id`` column first.

>>> from shoestring.runs import query
>>> query('SELECT id, "metrics.abs_error" FROM runs WHERE status = \\'done\\'', root="runs")   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from ..errors import ShoestringError, nearest
from .rundir import RunDir, default_root

_FIXED = ("id", "name", "task", "status", "error", "attempt", "started", "ended", "duration_s", "host", "path")


def scan(root=None) -> list[RunDir]:
    """The run folders under ``root`` (those holding a config.toml), sorted by id."""
    root = Path(root or default_root())
    if not root.is_dir():
        return []
    return [RunDir(p) for p in sorted(root.iterdir()) if p.name[:1] not in "._" and (p / "config.toml").is_file()]


def _flat(prefix: str, obj: dict) -> dict:
    out = {}
    for k, v in obj.items():
        out.update(_flat(f"{prefix}{k}.", v) if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def _time(text):
    return _dt.datetime.fromisoformat(text) if text else None


def run_record(run: RunDir) -> dict:
    """One run flattened to a ``runs`` row."""
    info = run.info
    started, ended = _time(info.get("started")), _time(info.get("ended"))
    fixed = {"id": run.id, "name": info.get("name"), "task": info.get("task"), "status": info.get("status"),
             "error": info.get("error"), "attempt": info.get("attempt"), "started": started, "ended": ended,
             "duration_s": (ended - started).total_seconds() if started and ended else None, "host": info.get("host"),
             "path": str(run.path)}
    return {**fixed, **_flat("config.", run.config), **_flat("metrics.", run.metrics)}


def _column(values: list):
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types across runs: keep them as JSON text
        return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())


def runs_table(root=None):
    """The ``runs`` view as a pyarrow Table."""
    import pyarrow as pa

    records = [run_record(r) for r in scan(root)]
    names = list(_FIXED) + sorted({k for rec in records for k in rec} - set(_FIXED))
    return pa.table({n: _column([rec.get(n) for rec in records]) for n in names})


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(root=None):
    """An in-memory DuckDB connection with the ``runs`` and ``samples`` views over ``root``.

    Raises :class:`ShoestringError` when ``root`` holds no runs.
    """
    import duckdb

    root = Path(root or default_root())
    runs = scan(root)
    if not runs:
        raise ShoestringError(f"no runs under {root}",
                              "run a sweep first (`shoestring sweep SPEC.toml`), or point --root / $SHOESTRING_RUNS at a runs folder")
    con = duckdb.connect()
    con.register("runs", runs_table(root))
    files = [r.path / "samples.parquet" for r in runs if (r.path / "samples.parquet").is_file()]
    if files:
        con.execute(f"""CREATE VIEW samples AS SELECT regexp_extract(filename, '([^/\\\\]+)[/\\\\]samples\\.parquet$', 1) AS run_id,
                        * EXCLUDE (filename) FROM read_parquet({_sql_list(files)}, union_by_name = true, filename = true)""")
    else:
        con.execute("CREATE VIEW samples AS SELECT NULL::VARCHAR AS run_id WHERE false")
    return con


def _sql_error(err: Exception) -> ShoestringError:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    message = " ".join(ln for ln in lines if not ln.startswith("LINE ") and set(ln) != {"^"})
    fix = "the views are runs and samples; see `shoestring runs ls` for ids"
    if 'table "config"' in message or 'table "metrics"' in message:
        fix = 'quote dotted columns: "config.n", "metrics.abs_error"'
    return ShoestringError(f"bad SQL: {message}", fix)


def query(sql: str, root=None, arrow: bool = False):
    """Run ``sql`` over the ``runs`` and ``samples`` views; rows as a list of dicts (or a pyarrow Table).

    Bad SQL raises :class:`ShoestringError` carrying DuckDB's message on one line.
    """
    import duckdb

    con = connect(root)
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without rows (CREATE, SET, ...)
            return []
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        table = fetch()
    except duckdb.Error as err:
        raise _sql_error(err) from None
    finally:
        con.close()
    return table if arrow else table.to_pylist()


def find(run_id: str, root=None) -> RunDir:
    """The run with this id (or unique id prefix); an unknown one raises with the nearest ids."""
    root = Path(root or default_root())
    runs = {r.id: r for r in scan(root)}
    if not runs:
        raise ShoestringError(f"no runs under {root}", "point --root / $SHOESTRING_RUNS at a runs folder")
    if run_id in runs:
        return runs[run_id]
    matches = [i for i in runs if i.startswith(run_id)]
    if len(matches) == 1:
        return runs[matches[0]]
    if matches:
        raise ShoestringError(f"run id '{run_id}' is ambiguous ({len(matches)} runs start with it)",
                              f"give more characters: {', '.join(matches[:3])}")
    close = nearest(run_id, runs)
    hint = f"did you mean {', '.join(close)}?" if close else "see `shoestring runs ls` for ids"
    raise ShoestringError(f"unknown run id '{run_id}' under {root}", hint)


def compare(run_ids: list[str], root=None, all_keys: bool = False) -> dict:
    """Config differences and metrics side by side.

    Returns
    -------
    dict
        ``ids`` (full ids, in order), ``config`` (key -> one value per run; only keys that differ unless
        ``all_keys``), ``same`` (keys equal in all runs -> value), ``metrics`` (key -> one value per run),
        ``status`` (one per run).
    """
    if len(run_ids) < 2:
        raise ShoestringError("compare needs at least two run ids", "pass two or more ids (see `shoestring runs ls`)")
    runs = [find(i, root) for i in run_ids]
    configs = [{"task": r.task, **_flat("", r.config)} for r in runs]
    metrics = [_flat("", r.metrics) for r in runs]
    keys = sorted({k for c in configs for k in c})
    table = {k: [c.get(k) for c in configs] for k in keys}
    differ = {k: v for k, v in table.items() if all_keys or any(x != v[0] for x in v)}
    same = {k: v[0] for k, v in table.items() if all(x == v[0] for x in v)}
    return {"ids": [r.id for r in runs], "status": [r.status for r in runs], "config": differ, "same": same,
            "metrics": {k: [m.get(k) for m in metrics] for k in sorted({k for m in metrics for k in m})}}

