"""`shoestring observe ...` writes a self-describing run directory with report.html and prints its path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli_helpers import cli, tiny_smol_dir
from shoestring.observe import TunedLens
from shoestring.runs.identity import load_toml


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_smol_dir(tmp_path_factory.mktemp("tiny-smol-report"))


def report_path(out: str) -> Path:
    last = [ln for ln in out.splitlines() if ln.strip()][-1]
    assert last.startswith("report: "), out
    return Path(last[len("report: "):])


def check_run(report: Path, task: str, **config) -> dict:
    """The run directory around ``report`` describes itself; returns its full result."""
    run = report.parent
    assert report.name == "report.html" and report.stat().st_size > 0
    assert run.name.startswith(task + "-")
    toml = load_toml((run / "config.toml").read_text(), "config.toml")
    assert toml["task"] == task
    for k, v in config.items():
        assert toml["config"][k] == v, k
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done" and status["error"] is None
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["end"] >= env["start"]
    assert json.loads((run / "metrics.json").read_text())
    html = report.read_text()
    assert "plotly-graph-div" in html and "Content-Security-Policy" in html
    return json.loads((run / "artifacts" / "result.json").read_text())


CLEAN, CORRUPT = "The Eiffel Tower is in the city of", "The Colosseum is in the city of"


def test_every_command_writes_a_run_with_a_report(tiny_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    cases = [
        (["observe", "lens", tiny_dir, "The capital of France is", "--target", " Paris"], "observe-lens",
         {"prompt": "The capital of France is", "target": " Paris"}),
        (["observe", "heads", tiny_dir, "--seq-len", 8, "--batch", 2], "observe-heads", {"seq_len": 8}),
        (["observe", "pattern", tiny_dir, "a b c a b", "--layer", 1, "--head", 2], "observe-pattern", {"head": 2}),
        (["observe", "patch", tiny_dir, "--clean", CLEAN, "--corrupt", CORRUPT, "--answer", " Paris", "--wrong", " Rome"],
         "observe-patch", {"hook": "resid_pre"}),
        (["observe", "patch", tiny_dir, "--clean", CLEAN, "--corrupt", CORRUPT, "--answer", " Paris", "--heads"],
         "observe-patch", {"heads": True}),
        (["observe", "dla", tiny_dir, CLEAN, "--target", " Paris", "--wrong", " Rome"], "observe-dla", {"wrong": " Rome"}),
        (["observe", "neuron", tiny_dir, "--layer", 1, "--neuron", 5, "--contexts", 8, "--context-length", 16,
          "--text", "Hello <b>world</b>"], "observe-neuron", {"neuron": 5}),
        (["observe", "geometry", tiny_dir, "--layer", 2], "observe-geometry", {"layer": 2}),
        (["observe", "probe", tiny_dir, "--hook", "blocks.2.hook_resid_post"], "observe-probe",
         {"hook": "blocks.2.hook_resid_post"}),
    ]
    for argv, task, config in cases:
        code, text, err = cli(capsys, *argv, "--out", out)
        assert code == 0, err
        result = check_run(report_path(text), task, model=str(tiny_dir), **config)
        assert result["model"] == str(tiny_dir)
    assert len(list(out.iterdir())) == len(cases)
    probe_run = next(out.glob("observe-probe-*"))
    assert json.loads((probe_run / "artifacts" / "probe_report.json").read_text())["rows"]
    neuron_html = next(out.glob("observe-neuron-*")).joinpath("report.html").read_text()
    assert "<b>world" not in neuron_html and "&lt;" in neuron_html and 'class="tok"' in neuron_html


def test_json_output_is_the_saved_result_and_no_report_skips_the_page(tiny_dir, tmp_path, capsys):
    argv = ["observe", "lens", tiny_dir, "The capital of France is", "--target", " Paris", "--out", tmp_path]
    code, text, _ = cli(capsys, *argv, "--json")
    data = json.loads(text)  # stdout holds the JSON only
    assert code == 0 and set(data) == {"model", "prompt", "target", "position", "layers"}
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "artifacts" / "result.json").read_text()) == data
    code, text, _ = cli(capsys, *argv, "--no-report", "--top", 2)
    assert code == 0 and text.splitlines()[-1].startswith("run: ")
    run2 = Path(text.splitlines()[-1][len("run: "):])
    assert run2 != run and not (run2 / "report.html").exists() and (run2 / "metrics.json").exists()


def test_lens_with_a_tuned_lens_shows_both(tiny_dir, tmp_path, capsys):
    d = 32
    TunedLens(3, [0, 1], torch.eye(d).repeat(2, 1, 1), torch.zeros(2, d), {"model": "tiny"}).save(tmp_path / "tl")
    code, text, _ = cli(capsys, "observe", "lens", tiny_dir, "The capital of France is", "--target", " Paris",
                        "--tuned-lens", tmp_path / "tl", "--out", tmp_path / "runs")
    assert code == 0 and "tuned" in text
    report = report_path(text)
    result = check_run(report, "observe-lens", tuned_lens=str(tmp_path / "tl"))
    assert len(result["tuned_lens"]["layers"]) == len(result["layers"])
    assert "tuned lens: KL to final" in report.read_text()


def test_bad_input_is_one_line_and_writes_no_run(tiny_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for argv, words in [
        (["observe", "lens", tiny_dir, "hi", "--tuned-lens", tmp_path / "empty"], ["holds no tuned lens"]),
        (["observe", "pattern", tiny_dir, "a b", "--layer", 1, "--head", 9], ["head 9 is out of range", "0 to 3"]),
        (["observe", "lens", tiny_dir, "hi", "--target", " Parisian"], ["not one"]),
        (["observe", "tour", tiny_dir, "--tuned-lens", tmp_path / "empty"], ["holds no tuned lens"]),
    ]:
        code, _, err = cli(capsys, *argv, "--out", tmp_path / "runs")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("shoestring: error: "), err
        assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "runs").exists()


def test_tour_writes_one_page(tiny_dir, tmp_path, capsys):
    code, text, _ = cli(capsys, "observe", "tour", tiny_dir, "--probe-layers", 2, "--out", tmp_path, "--json")
    summary = json.loads(text)
    assert code == 0
    report = Path(summary["report"])
    result = check_run(report, "observe-tour", probe_points=2)
    assert result["induction_heads"] == summary["induction_heads"]
    assert [r["layer"] for r in summary["probe"]["rows"]] == [0, 2]
    assert set(summary["seconds"]) == {"lens", "heads", "probe", "geometry", "patching", "neuron"}
    html = report.read_text()
    for title in ("Logit lens", "Attention-head census", "Linear probes", "Geometry of layer", "Activation patching",
                  "Neuron L"):
        assert title in html
    assert html.count('class="tok"') > 0
