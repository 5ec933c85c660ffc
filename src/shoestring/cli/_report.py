"""Shared by the observe commands: each run writes a self-describing run directory with its report page.

::

    runs/observe-lens-3f2a9c1b7d0e/
      config.toml          the command's resolved options (their hash is the run id)
      env.json, status.json
      metrics.json         the headline numbers (queryable with `shoestring runs sql`)
      artifacts/result.json  everything the command computed (what --json prints)
      report.html          the page: open it in any browser, offline
"""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console

OutOpt = typer.Option(None, "--out", help="where run directories go (default: $SHOESTRING_RUNS or ./runs)")
NoReportOpt = typer.Option(False, "--no-report", help="write the run directory without report.html")


def write_run(task: str, config: dict, result: dict, *, metrics: dict | None = None, page=None, out=None,
              no_report: bool = False, artifacts: dict | None = None) -> Path:
    """Write the run directory for one command (then :func:`say_where` tells the user where it is).

    Parameters
    ----------
    task
        ``"observe-lens"``, ... (with the config, it makes the run id).
    config
        The command's options (model, prompt, dtype, device, ...).
    result
        Everything computed: saved as ``artifacts/result.json``.
    metrics
        The headline numbers for ``metrics.json``; default: ``result`` itself.
    page
        A :class:`shoestring.report.Page` written as ``report.html`` (skipped with ``no_report``).
    artifacts
        More ``{name: object}`` to save under ``artifacts/`` (JSON or tensors).

    Returns
    -------
    Path
        The report's path (or the run directory's, without a report).
    """
    from ..runs import RunDir

    run = RunDir.create(out, task, config)
    run.start()
    run.save_artifact("result", result)
    for name, obj in (artifacts or {}).items():
        run.save_artifact(name, obj)
    where = run.path
    if page is not None and not no_report:
        where = page.save(run.path / "report.html")
    elif (run.path / "report.html").exists():  # from an earlier run of the same config: stale now
        (run.path / "report.html").unlink()
    run.finish(result if metrics is None else metrics)
    return where


def say_where(path: Path) -> None:
    """The last line a command prints: where its report (or, without one, its run directory) is."""
    console.print(f"report: {path}" if Path(path).suffix == ".html" else f"run: {path}", soft_wrap=True,
                  markup=False, highlight=False)
