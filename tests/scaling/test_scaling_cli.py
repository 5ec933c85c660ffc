"""``shoestring scaling run`` end to end on a tiny grid (each cell its own process), its resume, and its
one-line errors."""

from __future__ import annotations

import json
import pytest

from cli_helpers import cli, one_line

TINY = ["--corpus", "stdlib-prose", "--max-chars", "150000", "--vocab-size", "300", "--d-model", "16", "--n-layer", "1",
        "--n-head", "2", "--context", "16", "--batch-size", "4", "--eval-tokens", "512", "--evals", "3"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOESTRING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOESTRING_THREADS", "1")
    return tmp_path


def test_tiny_grid_runs_reports_and_resumes(home, capsys):
    out = home / "runs"
    args = ["scaling", "run", "--variants", "baseline,layernorm", "--budgets", "2e8,4e8,8e8", "--seeds", "0,1",
            "--out", out, *TINY]
    code, stdout, err = cli(capsys, *args)
    assert code == 0, err
    assert "12 training runs (0 already done)" in stdout
    assert "layernorm" in stdout and "CEG" in stdout
    cells = [p for p in out.iterdir() if (p / "checkpoint" / "state.json").is_file()]
    assert len(cells) == 12  # one run folder per cell, each with its last checkpoint
    report = next(out.rglob("report.html"))
    assert "Compute-equivalent gain" in report.read_text()
    result = json.loads(next(out.rglob("artifacts/result.json")).read_text())
    row = next(r for r in result["table"] if r["variant"] == "layernorm")
    assert row["low"] <= row["ceg"] <= row["high"]
    assert [p["budget"] for p in result["points"]].count(2e8) == 4
    for p in result["points"]:  # each cell trained to its own budget, not a slice of a longer run
        assert p["flops"] <= p["budget"] and p["curve"][-1]["step"] == p["steps"]

    code, stdout, err = cli(capsys, *args)  # the same command again: nothing retrains
    assert code == 0, err
    assert "12 training runs (12 already done)" in stdout


@pytest.mark.parametrize("extra, words", [
    (["--budgets", "1e3,2e3,4e3"], ["smaller than one step"]),
    (["--set", "window=99"], ["window 99", "context"]),
    (["--set", "n_kv_head=3"], ["n_kv_head 3", "n_head"]),
    (["--set", "qk_norm=true"], ["QK-norm", "norm"]),
    (["--budgets", "1e9,2e9"], ["2 budgets"]),
    (["--variants", "baseline,nope"], ["unknown preset 'nope'"]),
    (["--optimizer", "sgd"], ["unknown optimizer 'sgd'"]),
])
def test_bad_grid_is_one_line_before_training(home, capsys, extra, words):
    code, _, err = cli(capsys, "scaling", "run", "--out", home / "runs", *TINY, *extra)
    one_line(code, err, *words)
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_corpus_smaller_than_one_batch(home, capsys):
    small = home / "small.txt"
    small.write_text("just a few words of text.")
    code, _, err = cli(capsys, "scaling", "run", "--out", home / "runs", *TINY, "--corpus", small)
    one_line(code, err, "fewer than one batch")


def test_presets_lists_flops(capsys):
    code, stdout, _ = cli(capsys, "scaling", "presets", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(stdout)}
    assert rows["multi-query"]["train_flops_per_token"] < rows["baseline"]["train_flops_per_token"]
    assert rows["moe"]["params"] > rows["baseline"]["params"]
