"""What a run ran on: versions, git sha, device, host, seed and times (written to ``env.json``)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata


def now() -> str:
    """The current UTC time as ISO 8601 text (second precision is not enough for ordering; keep micro)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def version(package: str) -> str | None:
    """The installed version of ``package`` without importing it (``None`` when absent)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_sha(folder: str | os.PathLike | None = None) -> str | None:
    """The commit of the git work tree around ``folder`` (cwd by default), ``+dirty`` when it has changes."""
    cwd = os.fspath(folder or os.getcwd())
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if sha.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device() -> str:
    """The accelerator torch sees, read only if the task already imported torch (importing it costs seconds)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "cpu"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()}, x{torch.cuda.device_count()})"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def collect(seed=None, executor: str | None = None) -> dict:
    """The ``env.json`` record at the start of a run; :func:`finish` adds the end time and device."""
    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "shoestring": version("shoestring"),
        "git_sha": git_sha(),
        "device": device(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "executor": executor,
        "seed": seed,
        "start": now(),
        "end": None,
    }


def finish(env: dict) -> dict:
    """``env`` with the end time and the device as seen after the task ran."""
    return {**env, "device": device(), "end": now()}
