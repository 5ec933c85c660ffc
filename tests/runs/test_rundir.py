"""Run directories: identity, the files a run writes, skip of finished runs, rerun of failed ones."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.runs import TASKS, RunDir, register_task, resolve_task, run, run_id
from shoestring.runs.identity import load_toml


def test_run_id_is_stable():
    a = run_id("monte-carlo-pi", {"n": 10, "seed": 1, "nested": {"b": 2, "a": 1}})
    b = run_id("monte-carlo-pi", {"nested": {"a": 1, "b": 2}, "seed": 1, "n": 10})
    assert a == b and a.startswith("monte-carlo-pi-") and len(a) == len("monte-carlo-pi-") + 12
    assert run_id("monte-carlo-pi", {"n": 11, "seed": 1}) != run_id("monte-carlo-pi", {"n": 10, "seed": 1})
    assert run_id("monte-carlo-pi", {"n": 10, "x": None}) == run_id("monte-carlo-pi", {"n": 10})  # None = not set
    # pinned: a change here re-runs everyone's finished runs, so it must be deliberate
    text = b'{"config":{"checkpoints":10,"n":1000,"seed":0},"task":"monte-carlo-pi"}'
    assert hashlib.sha256(text).hexdigest()[:12] == "25d07ec212a7"
    assert run_id("monte-carlo-pi", {"n": 1000, "seed": 0, "checkpoints": 10}) == "monte-carlo-pi-25d07ec212a7"


def test_run_writes_a_self_describing_folder(root):
    row = run("monte-carlo-pi", {"n": 2000, "seed": 3}, root=root, name="demo")
    path = root / row["id"]
    assert row["status"] == "done" and not row["skipped"] and abs(row["metrics"]["estimate"] - 3.14) < 0.2
    assert sorted(p.name for p in path.iterdir()) == ["config.toml", "env.json", "metrics.json", "samples.parquet", "status.json"]
    doc = load_toml((path / "config.toml").read_text(), "config")
    assert doc == {"task": "monte-carlo-pi", "config": {"n": 2000, "seed": 3, "checkpoints": 10}}  # defaults resolved
    assert run_id(doc["task"], doc["config"]) == row["id"]
    env = json.loads((path / "env.json").read_text())
    for key in ("python", "torch", "transformers", "shoestring", "git_sha", "device", "hostname", "seed", "start", "end"):
        assert key in env
    assert env["seed"] == 3 and env["end"] >= env["start"]
    info = RunDir(path).info
    assert info["status"] == "done" and info["name"] == "demo" and info["attempt"] == 1 and info["error"] is None
    assert RunDir(path).samples().num_rows == 10


def test_finished_run_is_skipped(root):
    first = run("monte-carlo-pi", {"n": 500}, root=root)
    again = run("monte-carlo-pi", {"n": 500, "seed": 0}, root=root)  # seed 0 is the default: same run
    assert again["skipped"] and again["id"] == first["id"] and again["metrics"] == first["metrics"]
    assert RunDir(root / first["id"]).attempt == 1
    forced = run("monte-carlo-pi", {"n": 500}, root=root, rerun=True)
    assert not forced["skipped"] and forced["attempt"] == 2 and forced["metrics"] == first["metrics"]


def test_failed_and_interrupted_runs_run_again(root, tmp_path):
    poison = tmp_path / "poison"
    poison.write_text("")
    cfg = {"x": 3, "poison": str(poison)}
    failed = run("runs_tasks:flaky", cfg, root=root)
    assert failed["status"] == "failed" and failed["error"].startswith("RuntimeError: poisoned by") and failed["metrics"] == {}
    poison.unlink()
    fixed = run("runs_tasks:flaky", cfg, root=root)
    assert fixed["status"] == "done" and fixed["metrics"] == {"y": 9, "attempt": 2} and fixed["error"] is None
    # an interrupted run (status still "running", its process gone) is run again too
    rd = RunDir(root / fixed["id"])
    rd._set(status="running", pid=2**22 + 12345)
    assert run("runs_tasks:flaky", cfg, root=root)["attempt"] == 3


def test_artifacts_and_samples(root):
    rd = RunDir.create(root, "monte-carlo-pi", {"n": 1})
    rd.save_artifact("weights", {"w": torch.arange(6.0).reshape(2, 3)})
    rd.save_artifact("arrays", {"a": np.ones(3, dtype=np.float32)})
    rd.save_artifact("notes", {"layer": 3, "names": ["a", "b"]})
    assert torch.equal(rd.load_artifact("weights")["w"], torch.arange(6.0).reshape(2, 3))
    assert rd.load_artifact("arrays")["a"].tolist() == [1.0, 1.0, 1.0]
    assert rd.load_artifact("notes") == {"layer": 3, "names": ["a", "b"]}
    assert sorted(p.name for p in rd.artifacts.iterdir()) == ["arrays.safetensors", "notes.json", "weights.safetensors"]
    with pytest.raises(ShoestringError, match="no artifact 'nope'.*notes"):
        rd.load_artifact("nope")
    rd.write_samples([{"prompt": "a", "score": 1.0}])
    rd.write_samples([{"prompt": "b", "score": 0.5}], append=True)
    assert rd.samples().to_pylist() == [{"prompt": "a", "score": 1.0}, {"prompt": "b", "score": 0.5}]


def test_config_values_toml_cannot_hold_name_their_key(root):
    with pytest.raises(ShoestringError, match=r"config\.model\.dtype = .*cannot be stored"):
        run("monte-carlo-pi", {"model": {"dtype": object()}}, root=root)


def test_task_registry():
    assert {"monte-carlo-pi", "matmul-bench"} <= set(TASKS)
    with pytest.raises(ShoestringError, match="already registered"):
        register_task("monte-carlo-pi")(lambda c, r: {})
    with pytest.raises(ShoestringError, match="unknown task 'monte-carlo-py'.*monte-carlo-pi"):
        resolve_task("monte-carlo-py")
    with pytest.raises(ShoestringError, match="cannot import task 'no_such_mod:fn'"):
        resolve_task("no_such_mod:fn")
    assert resolve_task("runs_tasks:flaky").__name__ == "flaky"


def test_matmul_bench(root):
    row = run("matmul-bench", {"n": 64, "repeats": 2}, root=root)
    assert row["status"] == "done" and row["metrics"]["flops_per_s"] > 0 and row["metrics"]["n"] == 64
    timings = RunDir(root / row["id"]).load_artifact("timings")
    assert len(timings["seconds"]) == 2
