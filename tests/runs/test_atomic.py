"""Atomic writes: an exception mid-write leaves the old file intact and no temporary file behind."""

from __future__ import annotations

import json
import os

import pytest

from shoestring.runs.atomic import atomic_path, is_temporary, write_bytes, write_json, write_text


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json(path, {"x": 1})
    write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    write_text(tmp_path / "c.txt", "héllo")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01" and (tmp_path / "c.txt").read_text() == "héllo"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.json", "b.bin", "c.txt"]


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"old": True})

    def boom(*args, **kwargs):  # the disk "fails" after the temp file was opened
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"new": True})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_path_for_libraries(tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".safetensors" and is_temporary(tmp)
            tmp.write_text("half")
            raise RuntimeError("library crashed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644
