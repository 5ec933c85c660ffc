"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every write goes to a temporary file in the same folder, is flushed and fsynced, then moved over the
target with :func:`os.replace` (atomic on POSIX and Windows when both live on one file system). A crash
or an exception mid-write leaves the old file as it was and no temporary file behind.

>>> from shoestring.runs.atomic import write_json, atomic_path
>>> write_json("out/metrics.json", {"loss": 0.1})            # doctest: +SKIP
>>> with atomic_path("out/weights.safetensors") as tmp:       # doctest: +SKIP
...     safetensors.torch.save_file(tensors, tmp)             # the library writes; we move it in place
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp"  # temporary names are ".<name>.<random>.tmp<suffix>"; readers skip them


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # the rename itself is durable only once the folder entry is on disk (no-op where unsupported)
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit move it over ``path``.

    For libraries that insist on writing files themselves (safetensors, pyarrow, ``torch.save``).
    The temporary name keeps the suffix of ``path`` so format sniffing by extension still works.

    Parameters
    ----------
    path
        The final file. Its folder is created if missing.
    fsync
        Flush the file and its folder to disk before returning (the default).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{TMP_MARK}{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return the path."""
    return write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(path: str | os.PathLike, obj, fsync: bool = True, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (non-JSON values via ``str``) to ``path`` atomically; return the path."""
    return write_text(path, json.dumps(obj, indent=indent, default=str) + "\n", fsync=fsync)


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the temporary files this module makes (readers and indexes skip them)."""
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name
