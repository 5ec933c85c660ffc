"""The KV harness end to end on a tiny model: a grid of cells through the sweep executor, every cell holds
its budget (bytes as the budget says), scores and curves gathered, a rerun resumes, bad input is one line."""

from __future__ import annotations

import json

import pytest

from cli_helpers import cli, one_line, tiny_smol_dir

from shoestring.kv.bench import check_config, kv_bench

SMALL = {"policies": ["window", "streaming", "snapkv", "pyramidkv"], "budgets": [0.5, 0.25], "lengths": [160],
         "depths": [0.2, 0.8], "ppl_length": 192, "chunk": 32, "window": 8, "corpus": "stdlib-prose", "bucket": 32,
         "new_tokens": 4, "cost_decode": 4, "tasks": ["perplexity", "passkey", "multikey"], "keys": 2}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(tiny_smol_dir(tmp_path_factory.mktemp("kv-bench-model")))


@pytest.fixture(scope="module")
def result(model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("kv-runs")
    seen = []
    res = kv_bench({**SMALL, "model": model_dir}, root=root, on_start=lambda total, todo: seen.append((total, todo)))
    again = []
    kv_bench({**SMALL, "model": model_dir}, root=root, on_start=lambda total, todo: again.append((total, todo)))
    res["_starts"] = seen + again
    return res


def test_every_cell_ran_once_and_a_rerun_resumes(result):
    assert result["_starts"] == [(9, 9), (9, 0)]  # full + 4 policies x 2 budgets; the rerun finds them all done


def test_every_cell_holds_its_budget_in_bytes(result):
    for c in result["cost"]:
        if c["policy"] == "full":
            assert c["budget_tokens"] is None and c["cache_tokens_per_layer"] == [160] * 3
            continue
        assert c["budget_tokens"] == round(c["budget"] * 160)
        assert sum(c["cache_tokens_per_layer"]) == c["budget_tokens"] * 3
        assert c["bytes_error"] == pytest.approx(0.0)
        assert c["peak_cache_tokens"] <= max(c["budgets_per_layer"]) + 32
        assert c["prefill_s"] > 0 and c["decode_tokens_per_s"] > 0
    pyr = next(c for c in result["cost"] if c["policy"] == "pyramidkv" and c["budget"] == 0.5)
    assert pyr["cache_tokens_per_layer"][0] > pyr["cache_tokens_per_layer"][-1]


def test_scores_summary_and_curves(result):
    tasks = {s["task"] for s in result["scores"]}
    assert tasks == {"perplexity", "passkey", "multikey"}
    n = {(s["task"], s["policy"], s["budget"]) for s in result["scores"]}
    assert len(n) == 3 * 9
    full_ppl = next(s for s in result["summary"] if s["task"] == "perplexity" and s["policy"] == "full")
    assert full_ppl["relative_to_full"] == pytest.approx(1.0) and full_ppl["mean"] > 1
    win = next(s for s in result["summary"] if s["task"] == "perplexity" and s["policy"] == "window" and s["budget"] == 0.25)
    assert win["mean"] != full_ppl["mean"]  # eviction changed the second half's perplexity
    for cv in result["curves"]:
        assert len(cv["positions"]) == len(cv["nll"]) == 6
    json.dumps(result)  # the run directory stores it as JSON


def test_bad_config_is_one_clear_error():
    from shoestring.errors import ShoestringError

    for bad, words in (({"budgets": [0]}, "fraction"), ({"budgets": [1.5]}, "fraction"),
                       ({"budget_token_list": [500], "lengths": [400]}, "window of 500"),
                       ({"window": 800, "lengths": [400], "policies": ["snapkv"]}, "observation window"),
                       ({"lengths": [9000]}, "longer than the model"), ({"policies": ["snapkvv"]}, "unknown KV policy"),
                       ({"tasks": ["nope"]}, "unknown task")):
        with pytest.raises(ShoestringError, match=words):
            check_config({"ppl_length": 256, **bad}, max_context=8192)


def test_cli_bad_input_exits_2_before_anything_runs(capsys, model_dir, tmp_path, monkeypatch):
    import shoestring.kv.session as S

    out = tmp_path / "runs"
    cases = [(["--budgets", "0"], "budget 0.0", "(0, 1]"), (["--budgets", "1.5"], "budget 1.5"),
             (["--budget-tokens", "4000", "--lengths", "300", "--ppl-length", "300"], "window of 4000"),
             (["--lengths", "5000"], "longer than the model's 2048"), (["--quant", "3"], "--quant 3")]
    for argv, *words in cases:
        code, _, err = cli(capsys, "kv", "bench", "--model", model_dir, "--out", out, *argv)
        one_line(code, err, *words)
    monkeypatch.setattr(S.KVSession, "__init__", lambda self, *a, **k: (_ for _ in ()).throw(
        __import__("shoestring.errors").errors.ShoestringError("policy 'h2o' needs attention weights, which this model "
                                                               "does not expose", "use a policy that reads only the cache")))
    code, _, err = cli(capsys, "kv", "bench", "--model", model_dir, "--out", out, "--policies", "h2o",
                       "--lengths", "300", "--ppl-length", "300")
    one_line(code, err, "needs attention weights")
    assert not out.exists() or not any(out.iterdir())  # nothing was written


def test_cli_bench_writes_a_run_with_a_report(capsys, model_dir, tmp_path):
    out = tmp_path / "runs"
    argv = ["kv", "bench", "--model", model_dir, "--out", out, "--policies", "streaming,h2o+pyramid", "--budgets", "0.5",
            "--tasks", "passkey,recall", "--lengths", "160", "--depths", "0.5", "--chunk", "32", "--corpus", "stdlib-prose"]
    code, stdout, err = cli(capsys, *argv)
    assert code == 0, err
    assert "3 cells (0 already done)" in stdout and "h2o+pyramid @ 0.5: done" in stdout
    report = stdout.strip().splitlines()[-1].removeprefix("report: ")
    assert report.endswith("report.html") and "Quality vs budget" in open(report).read()
    code, stdout, _ = cli(capsys, *argv)  # the same command again: every cell is found done
    assert code == 0 and "3 cells (3 already done)" in stdout
