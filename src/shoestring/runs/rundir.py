"""A run directory describes itself: what ran, on what, how it went, and what it produced.

::

    runs/monte-carlo-pi-3f2a9c1b7d0e/
      config.toml       task + resolved config (its hash is the run id)
      status.json       id, name, task, status (running | done | failed), error line, attempt, times
      env.json          python/torch/transformers/shoestring versions, git sha, device, host, seed, times
      metrics.json      what the task returned
      samples.parquet   optional rows (prompt, completion, score, ...)
      artifacts/        tensors as .safetensors, everything else as .json

Every file is written atomically (:mod:`shoestring.runs.atomic`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ShoestringError
from . import env as _env
from .atomic import atomic_path, write_json, write_text
from .identity import clean_config, dump_toml, load_toml, run_id

STATUSES = ("new", "running", "done", "failed")


def default_root() -> Path:
    """``$SHOESTRING_RUNS`` if set, else ``./runs``."""
    return Path(os.environ.get("SHOESTRING_RUNS") or "runs")


def _read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


@dataclass
class RunDir:
    """One run's folder. Make it with :meth:`create` (from task + config) or :meth:`open` (an existing one).

    Examples
    --------
    >>> run = RunDir.create("runs", "monte-carlo-pi", {"n": 1000, "seed": 0})   # doctest: +SKIP
    >>> run.status, run.metrics                                                 # doctest: +SKIP
    """

    path: Path

    @classmethod
    def create(cls, root: str | os.PathLike | None, task: str, config: dict, name: str | None = None) -> RunDir:
        """The run for ``task`` + ``config`` under ``root``: found if it exists, else made (with its config.toml)."""
        config = clean_config(config)
        run = cls(Path(root or default_root()) / run_id(task, config))
        if not (run.path / "config.toml").exists():
            write_text(run.path / "config.toml", dump_toml({"task": task, "config": config}))
        if not (run.path / "status.json").exists():
            write_json(run.path / "status.json", {"id": run.id, "name": name or run.id, "task": task, "status": "new",
                                                  "error": None, "attempt": 0, "started": None, "ended": None})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run folder (it must hold a config.toml)."""
        run = cls(Path(path))
        if not (run.path / "config.toml").is_file():
            raise ShoestringError(f"{run.path} is not a run directory (no config.toml)", "pass a folder made by a run")
        return run

    # ---- what the run is
    @property
    def id(self) -> str:
        return self.path.name

    def _toml(self) -> dict:
        return load_toml((self.path / "config.toml").read_text(), str(self.path / "config.toml"))

    @property
    def task(self) -> str:
        return self._toml()["task"]

    @property
    def config(self) -> dict:
        """The resolved config the run ran with."""
        return self._toml().get("config", {})

    @property
    def info(self) -> dict:
        """The contents of status.json (id, name, task, status, error, attempt, started, ended)."""
        return _read_json(self.path / "status.json", {}) or {}

    @property
    def status(self) -> str:
        return self.info.get("status", "new")

    @property
    def attempt(self) -> int:
        """1 on a first run; more when an interrupted or failed run is run again (tasks may resume from artifacts)."""
        return int(self.info.get("attempt", 0))

    @property
    def env(self) -> dict:
        return _read_json(self.path / "env.json", {}) or {}

    @property
    def metrics(self) -> dict:
        return _read_json(self.path / "metrics.json", {}) or {}

    @property
    def artifacts(self) -> Path:
        """The artifacts folder (made on first use)."""
        folder = self.path / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # ---- life cycle
    def _set(self, **fields) -> None:
        write_json(self.path / "status.json", {**self.info, **fields})

    def start(self, name: str | None = None, executor: str | None = None) -> None:
        """Mark the run ``running`` (one more attempt) and write env.json."""
        environment = _env.collect(seed=self.config.get("seed"), executor=executor)
        write_json(self.path / "env.json", environment)
        self._set(status="running", error=None, attempt=self.attempt + 1, started=environment["start"], ended=None,
                  host=environment["hostname"], pid=environment["pid"], **({"name": name} if name else {}))

    def finish(self, metrics: dict) -> None:
        """Write metrics.json and mark the run ``done``."""
        self.write_metrics(metrics)
        self._end("done", None)

    def fail(self, error: str) -> None:
        """Mark the run ``failed`` with a one-line error."""
        self._end("failed", " ".join(str(error).split())[:500])

    def _end(self, status: str, error: str | None) -> None:
        environment = _env.finish(self.env)
        write_json(self.path / "env.json", environment)
        self._set(status=status, error=error, ended=environment["end"])

    # ---- outputs
    def write_metrics(self, metrics: dict) -> Path:
        if not isinstance(metrics, dict):
            raise ShoestringError(f"a task must return a dict of metrics, got {type(metrics).__name__}",
                                  "return {'name': value, ...}")
        return write_json(self.path / "metrics.json", metrics)

    def write_samples(self, rows, append: bool = False) -> Path:
        """Write ``rows`` (a list of dicts or a pyarrow Table) to samples.parquet; ``append`` keeps the old rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))
        if append and (self.path / "samples.parquet").exists():
            table = pa.concat_tables([self.samples(), table], promote_options="default")
        with atomic_path(self.path / "samples.parquet") as tmp:
            pq.write_table(table, tmp)
        return self.path / "samples.parquet"

    def samples(self):
        """samples.parquet as a pyarrow Table (empty when the run wrote none)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.path / "samples.parquet"
        return pq.read_table(path) if path.exists() else pa.table({})

    def save_artifact(self, name: str, obj) -> Path:
        """Save ``obj`` under artifacts/: a dict of tensors or arrays -> ``name.safetensors``, else ``name.json``."""
        from .artifacts import save

        return save(self.artifacts, name, obj)

    def load_artifact(self, name: str):
        """Load what :meth:`save_artifact` saved (tensors come back as torch tensors when torch is installed)."""
        from .artifacts import load

        return load(self.artifacts, name)
