"""Sweep specs: expansion, validation naming the key, and the local executor (failures isolated, reruns minimal)."""

from __future__ import annotations

import pytest

from shoestring.errors import ShoestringError
from shoestring.runs import RunDir, expand, load_spec, parse_spec, run_sweep

SPEC = """
[sweep]
name = "pi"
task = "monte-carlo-pi"

[base]
n = 1000
model = { dtype = "float32" }

[grid]
seed = [0, 1]
model.layers = [2, 4]

[[runs]]
n = 50
seed = 9

[resources]
cpus = 1
"""


def test_expand_grid_times_base_then_explicit_runs(write_spec):
    configs = expand(write_spec(SPEC))
    assert configs == [
        {"n": 1000, "seed": 0, "model": {"dtype": "float32", "layers": 2}},
        {"n": 1000, "seed": 0, "model": {"dtype": "float32", "layers": 4}},
        {"n": 1000, "seed": 1, "model": {"dtype": "float32", "layers": 2}},
        {"n": 1000, "seed": 1, "model": {"dtype": "float32", "layers": 4}},
        {"n": 50, "seed": 9, "model": {"dtype": "float32"}},
    ]
    assert expand({"sweep": {"task": "monte-carlo-pi"}, "base": {"n": 5}}) == [{"n": 5}]  # no grid, no runs: one run
    spec = load_spec(write_spec(SPEC, "named.toml"))
    assert (spec.name, spec.executor, spec.resources) == ("pi", "local", {"cpus": 1, "gpus": 0, "memory_gb": None})


@pytest.mark.parametrize("doc, key", [
    ({"sweep": {}}, "sweep.task"),
    ({"sweep": {"task": "monte-carlo-pi", "exector": "ray"}}, "sweep.exector"),
    ({"sweep": {"task": "monte-carlo-pi", "executor": "slurm"}}, "sweep.executor"),
    ({"sweep": {"task": "monte-carlo-pi"}, "grid": {"seed": 3}}, "grid.seed"),
    ({"sweep": {"task": "monte-carlo-pi"}, "grid": {"seed": []}}, "grid.seed"),
    ({"sweep": {"task": "monte-carlo-pi"}, "resources": {"gpu": 1}}, "resources.gpu"),
    ({"sweep": {"task": "monte-carlo-pi"}, "resources": {"cpus": 0}}, "resources.cpus"),
    ({"sweep": {"task": "monte-carlo-pi"}, "params": {}}, "params"),
    ({"sweep": {"task": "monte-carlo-pi"}, "runs": {"n": 1}}, "runs"),
])
def test_invalid_spec_names_the_key(doc, key):
    with pytest.raises(ShoestringError) as err:
        parse_spec(doc)
    assert f"{key}" in str(err.value) and "\n" not in str(err.value)


def test_bad_task_and_bad_toml_name_the_problem(write_spec, root):
    with pytest.raises(ShoestringError, match="sweep.task: unknown task 'monte-carlo-py'.*monte-carlo-pi"):
        run_sweep(write_spec('[sweep]\ntask = "monte-carlo-py"\n'), root=root)
    with pytest.raises(ShoestringError, match="not valid TOML"):
        load_spec(write_spec("[sweep\n"))
    with pytest.raises(ShoestringError, match="no sweep spec at"):
        load_spec("/nonexistent/spec.toml")


def test_local_executor_isolates_failures_and_reruns_only_them(write_spec, root, tmp_path):
    poison = tmp_path / "poison"
    poison.write_text("")
    spec = write_spec(f"""
        [sweep]
        task = "runs_tasks:flaky"
        [grid]
        x = [1, 2, 3]
        [[runs]]
        x = 4
        poison = "{poison}"
        [[runs]]
        x = 5
        die = true
        """)
    rows = run_sweep(spec, root=root, max_parallel=2)
    assert [r["params"] for r in rows] == [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 4, "poison": str(poison)}, {"x": 5, "die": True}]
    assert [r["status"] for r in rows] == ["done", "done", "done", "failed", "done"]
    assert [r["metrics"].get("y") for r in rows[:3]] == [1, 4, 9]
    assert rows[3]["error"].startswith("RuntimeError: poisoned by") and RunDir(root / rows[3]["id"]).status == "failed"
    ended = {r["id"]: RunDir(root / r["id"]).info["ended"] for r in rows}

    poison.unlink()
    again = run_sweep(spec, root=root)
    assert [r["skipped"] for r in again] == [True, True, True, False, True]
    assert again[3]["status"] == "done" and again[3]["metrics"] == {"y": 16, "attempt": 2}
    assert all(RunDir(root / i).info["ended"] == t for i, t in ended.items() if i != rows[3]["id"])  # untouched


def test_a_crashed_worker_fails_only_its_run(write_spec, root):
    spec = write_spec("""
        [sweep]
        task = "runs_tasks:crash"
        [grid]
        die = [false, true]
        """)
    rows = run_sweep(spec, root=root)
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert rows[1]["error"] == "worker process died (exit code 3)"
