"""Start a caching process, wait until its store lists enough shards, then SIGKILL it (no clean-up runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from shoestring.store import Manifest


def kill_after_shards(cmd: list[str], out: Path, shards: int, settle: float = 0.0, poll: float = 0.02,
                      timeout: float = 120, **popen) -> None:
    """Run ``cmd``; once ``out``'s manifest lists ``shards`` shards, wait ``settle`` s (to land inside the
    next shard) and kill -9 it. Fails if the process ends first."""
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, **popen)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if (out / "manifest.json").exists() and len(Manifest.load(out).shards) >= shards:
                time.sleep(settle)
                break
            time.sleep(poll)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
