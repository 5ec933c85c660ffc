"""The Ray executor on a real local Ray instance gives the same results table as the local executor."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="needs the [ray] extra")

from shoestring.errors import ShoestringError  # noqa: E402
from shoestring.runs import RayExecutor, run_sweep  # noqa: E402
from shoestring.runs.runner import make_job  # noqa: E402

SPEC = """
[sweep]
name = "pi-ray"
task = "monte-carlo-pi"
executor = "ray"

[base]
n = 5000

[grid]
seed = [0, 1, 2, 3]

[[runs]]
n = 0

[resources]
cpus = 1
memory_gb = 0.25
"""


def _table(rows):
    return [(r["id"], r["params"], r["status"], r["metrics"], r["error"]) for r in rows]


@pytest.mark.slow
def test_ray_matches_local(write_spec, tmp_path):
    spec = write_spec(SPEC)
    local = run_sweep(spec, executor="local", root=tmp_path / "local")
    assert not ray.is_initialized()
    remote = run_sweep(spec, root=tmp_path / "ray")  # the spec says ray: starts a local instance, then shuts it down
    assert not ray.is_initialized()
    assert _table(remote) == _table(local)
    assert [r["status"] for r in remote] == ["done"] * 4 + ["failed"]
    assert remote[4]["error"] == "ValueError: n must be positive, got 0"

    # an instance the test started: the executor joins it and leaves it running
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        again = run_sweep(spec, root=tmp_path / "ray")  # only the failed run goes back to Ray
        assert [r["skipped"] for r in again] == [True] * 4 + [False] and again[4]["attempt"] == 2
        assert ray.is_initialized()
        job = make_job("monte-carlo-pi", {"n": 10}, tmp_path, resources={"cpus": 1, "gpus": 4})
        with pytest.raises(ShoestringError, match=r"resources.gpus = 4 per run, but the Ray cluster has 0"):
            list(RayExecutor().execute([job]))  # Ray would wait forever; we say so at once
    finally:
        ray.shutdown()

