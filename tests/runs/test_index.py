"""The results index: DuckDB views over every run folder, compare, and the runs/sweep CLI."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from shoestring.cli.runs import runs_app, sweep
from shoestring.errors import ShoestringError
from shoestring.runs import compare, find, query, run

app = typer.Typer()
app.add_typer(runs_app, name="runs")
app.command()(sweep)


@pytest.fixture
def filled(root):
    ids = [run("monte-carlo-pi", {"n": 400, "seed": s}, root=root, name="pi")["id"] for s in (0, 1)]
    ids.append(run("matmul-bench", {"n": 32, "repeats": 1}, root=root)["id"])
    ids.append(run("monte-carlo-pi", {"n": -1}, root=root)["id"])  # failed
    return ids


def test_runs_view(root, filled):
    rows = query('SELECT id, task, status, "config.seed", "config.n", "metrics.estimate", duration_s FROM runs ORDER BY id', root=root)
    assert len(rows) == 4 and {r["id"] for r in rows} == set(filled)
    pi = [r for r in rows if r["task"] == "monte-carlo-pi" and r["status"] == "done"]
    assert sorted(r["config.seed"] for r in pi) == [0, 1] and all(abs(r["metrics.estimate"] - 3.14) < 0.3 for r in pi)
    failed = query("SELECT error FROM runs WHERE status = 'failed'", root=root)
    assert failed == [{"error": "ValueError: n must be positive, got -1"}]
    mm = query('SELECT "metrics.gflops_per_s" > 0 AS ok, "config.dtype" FROM runs WHERE task = \'matmul-bench\'', root=root)
    assert mm == [{"ok": True, "config.dtype": "float32"}]


def test_samples_view(root, filled):
    rows = query("SELECT run_id, count(*) AS n, max(points) AS points FROM samples GROUP BY run_id ORDER BY run_id", root=root)
    assert [r["n"] for r in rows] == [10, 10] and {r["run_id"] for r in rows} == set(filled[:2])
    table = query("SELECT * FROM samples", root=root, arrow=True)
    assert table.column_names[0] == "run_id" and table.num_rows == 20


def test_bad_sql_and_empty_root(root, filled, tmp_path):
    with pytest.raises(ShoestringError) as err:
        query("SELEC 1", root=root)
    assert str(err.value).startswith("bad SQL: Parser Error") and "\n" not in str(err.value)
    with pytest.raises(ShoestringError, match='quote dotted columns: "config.n"'):
        query("SELECT config.n FROM runs", root=root)
    with pytest.raises(ShoestringError, match="no runs under"):
        query("SELECT 1", root=tmp_path / "empty")


def test_find_and_compare(root, filled):
    assert find(filled[0][:20], root).id == filled[0]
    with pytest.raises(ShoestringError, match="unknown run id 'monte-carlo-pi-zzzz'.*did you mean monte-carlo-pi-"):
        find("monte-carlo-pi-zzzz", root)
    with pytest.raises(ShoestringError, match="ambiguous"):
        find("monte-carlo-pi-", root)
    doc = compare(filled[:2], root)
    assert doc["config"] == {"seed": [0, 1]} and doc["same"]["n"] == 400 and doc["same"]["task"] == "monte-carlo-pi"
    assert set(doc["metrics"]) == {"estimate", "abs_error", "n", "inside"} and len(doc["metrics"]["estimate"]) == 2
    mixed = compare([filled[0], filled[2]], root)
    assert mixed["config"]["task"] == ["monte-carlo-pi", "matmul-bench"] and mixed["metrics"]["seconds"][0] is None
    with pytest.raises(ShoestringError, match="at least two"):
        compare(filled[:1], root)


def test_cli_json(root, filled):
    cli = CliRunner()
    ls = cli.invoke(app, ["runs", "ls", "--root", str(root), "--json"])
    assert ls.exit_code == 0 and len(json.loads(ls.stdout)) == 4
    show = cli.invoke(app, ["runs", "show", filled[0], "--root", str(root), "--json"])
    assert json.loads(show.stdout)["samples"] == 10
    cmp = cli.invoke(app, ["runs", "compare", *filled[:2], "--root", str(root), "--json"])
    assert json.loads(cmp.stdout)["config"] == {"seed": [0, 1]}
    sql = cli.invoke(app, ["runs", "sql", "SELECT count(*) AS n FROM runs", "--root", str(root), "--json"])
    assert json.loads(sql.stdout) == [{"n": 4}]
    for argv in (["runs", "ls"], ["runs", "show", filled[0]], ["runs", "compare", *filled[:2]], ["runs", "sql", "SELECT id FROM runs"]):
        out = cli.invoke(app, [*argv, "--root", str(root)])
        assert out.exit_code == 0 and "monte-carlo-pi" in out.stdout, (argv, out.stdout)


@pytest.mark.parametrize("argv, words", [
    (["runs", "show", "monte-carlo-pi-zzzz"], ["unknown run id", "did you mean"]),
    (["runs", "sql", "SELEC 1"], ["bad SQL", "Parser Error"]),
    (["runs", "compare", "monte-carlo-pi-zzzz", "matmul"], ["unknown run id"]),
])
def test_cli_bad_input_raises_one_line(root, filled, argv, words):
    out = CliRunner().invoke(app, [*argv, "--root", str(root)])
    assert isinstance(out.exception, ShoestringError), out.output
    assert "\n" not in str(out.exception) and all(w in str(out.exception) for w in words)


def test_cli_empty_root_and_bad_spec(tmp_path, write_spec):
    out = CliRunner().invoke(app, ["runs", "ls", "--root", str(tmp_path / "nothing")])
    assert isinstance(out.exception, ShoestringError) and "no runs under" in str(out.exception)
    out = CliRunner().invoke(app, ["sweep", str(write_spec("[sweep]\ntask = 1\n")), "--root", str(tmp_path)])
    assert isinstance(out.exception, ShoestringError) and "sweep.task" in str(out.exception)
    out = CliRunner().invoke(app, ["sweep", str(write_spec('[sweep]\ntask = "monte-carlo-pi"\n')), "--address", "x:1"])
    assert isinstance(out.exception, ShoestringError) and "--executor ray" in str(out.exception)


def test_cli_sweep(write_spec, root):
    spec = write_spec('[sweep]\nname = "pi"\ntask = "monte-carlo-pi"\n[base]\nn = 300\n[grid]\nseed = [0, 1]\n')
    out = CliRunner().invoke(app, ["sweep", str(spec), "--root", str(root), "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["params"] for r in rows] == [{"seed": 0}, {"seed": 1}] and all(r["status"] == "done" for r in rows)
    out = CliRunner().invoke(app, ["sweep", str(spec), "--root", str(root)])
    assert out.exit_code == 0 and "2/2 runs done" in out.stdout
