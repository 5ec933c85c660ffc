"""The pruning reports and ``shoestring prune curve`` on a tiny Llama with the real SmolLM2 tokenizer: a curve of
2 criteria x 2 ratios is 4 cell run folders, a rerun resumes without touching them, the curve and one-run pages
carry the expected series and rows and draw in headless Chromium without a console error; bad input is one
line (exit 2) before any cell runs."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

from cli_helpers import cli, one_line, tiny_smol_dir

_REPORT_TESTS = str(Path(__file__).resolve().parents[1] / "report")
if _REPORT_TESTS not in sys.path:
    sys.path.append(_REPORT_TESTS)  # browser_check; appended, so it shadows nothing

import browser_check  # noqa: E402

from shoestring.prune.curve import CELL_TASK  # noqa: E402
from shoestring.report.prune import (block_flops_kept, curve_figure, curve_page, prune_page, speed_figure,  # noqa: E402
                                     widths, widths_figure)

_no_network = browser_check.loopback_guard  # the suite's network guard, widened to loopback for chromedriver
browser = pytest.mark.skipif(browser_check.available() is not None, reason=str(browser_check.available()))

SMALL = ["--task", "stdlib-prose", "--other", "stdlib-code", "--calib", "2", "--eval", "2", "--length", "32",
         "--batch-size", "2", "--speed-tokens", "2", "--speed-repeats", "1"]
CURVE = ["--criteria", "magnitude,wanda", "--ratios", "0.3,0.5", "--recover-tokens", "64", "--recover-lr", "1e-3"]


@contextlib.contextmanager
def curve_registered():
    """``prune curve`` on the real CLI: as registered in cli/prune.py, or added here for the test's duration."""
    from shoestring.cli.prune import prune_app
    from shoestring.cli.prune_curve import curve

    with pytest.MonkeyPatch.context() as mp:
        if "curve" not in {c.name for c in prune_app.registered_commands}:
            mp.setattr(prune_app, "registered_commands", list(prune_app.registered_commands))
            prune_app.command("curve")(curve)
        yield


@pytest.fixture
def registered():
    with curve_registered():
        yield


def run_cli(*argv) -> tuple[int, str, str]:
    """``shoestring ARGV`` in this process without capsys (usable from a module-scoped fixture)."""
    from shoestring.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code, out.getvalue(), err.getvalue()


def cell_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if (p / "config.toml").is_file() and CELL_TASK in (p / "config.toml").read_text()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_smol_dir(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory):
    """The curve run twice with the same options: the first computes 4 cells, the second should only resume."""
    root = tmp_path_factory.mktemp("curve-runs")
    with curve_registered():
        code, out, err = run_cli("prune", "curve", "--model", tiny, "--out", root, "--json", *CURVE, *SMALL)
        assert code == 0, err
        first = json.loads(out)
        stamps = {p.name: [(p / f).stat().st_mtime_ns for f in ("plan.json", "artifacts/result.json", "status.json")]
                  for p in cell_dirs(root)}
        code, again, err = run_cli("prune", "curve", "--model", tiny, "--out", root, *CURVE, *SMALL)
        assert code == 0, err
    report = Path(first["report"])
    result = json.loads((report.parent / "artifacts" / "result.json").read_text())
    return {"root": root, "first": first, "stamps": stamps, "again": again, "report": report, "result": result}


def test_a_curve_is_one_run_folder_per_cell_and_a_rerun_resumes(swept):
    root, cells = swept["root"], swept["result"]["cells"]
    assert len(swept["stamps"]) == 4 and len(cells) == 4 and len(swept["first"]["cells"]) == 4
    assert {(c["criterion"], c["head_ratio"]) for c in cells} == {(k, r) for k in ("magnitude", "wanda") for r in (0.3, 0.5)}
    assert "4 cells (4 already done)" in swept["again"]  # the rerun found every cell finished
    after = {p.name: [(p / f).stat().st_mtime_ns for f in ("plan.json", "artifacts/result.json", "status.json")]
             for p in cell_dirs(root)}
    assert after == swept["stamps"]  # ... and touched none of them
    assert swept["report"].name == "report.html" and swept["report"].parent.name.startswith("prune-curve-")
    assert "report: " in swept["again"] and "quality vs size" in swept["again"]


def test_cells_grow_smaller_with_the_ratio_and_recover(swept):
    cells = swept["result"]["cells"]
    for name in ("magnitude", "wanda"):
        mine = sorted((c for c in cells if c["criterion"] == name), key=lambda c: c["head_ratio"])
        assert 0 < mine[0]["params_removed"] < mine[1]["params_removed"]
        assert all(c["recovered"]["steps"] == 1 and len(c["recovered"]["losses"]) == 1 for c in mine)
        assert all(set(c["perplexity_ratio"]) == {"stdlib-prose", "stdlib-code"} for c in mine)
    same = {c["head_ratio"]: c["params_removed"] for c in cells if c["criterion"] == "magnitude"}
    assert all(c["params_removed"] == same[c["head_ratio"]] for c in cells)  # same shapes whatever the criterion


def test_the_curve_page_has_a_line_per_criterion_and_domain_and_a_row_per_cell(swept):
    cells = swept["result"]["cells"]
    for stage in ("pruned", "recovered"):
        fig = curve_figure(cells, stage)
        assert len(fig.data) == 4  # 2 criteria x 2 domains
        dashes = {t.name: t.line.dash for t in fig.data}
        assert dashes["wanda, stdlib-prose"] == "solid" and dashes["wanda, stdlib-code"] == "dash"  # task solid
        assert all(len(t.x) == 3 and t.x[0] == 0 for t in fig.data)  # the original, then the 2 ratios
        assert fig.layout.yaxis.type == "log"
    speed = speed_figure(cells)
    assert [t.name for t in speed.data] == ["decode", "prefill", "FLOP reduction"] and len(speed.data[0].x) == 4
    page = curve_page(cells)
    assert page.n_figures == 3  # pruned, recovered, speed
    html = page.render()
    table = html.split('class="data prune-curve"')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 4
    assert swept["report"].read_text().count('class="data prune-curve"') == 1


@browser
def test_the_curve_report_in_the_browser(swept):
    seen = browser_check.open_page(swept["report"])
    assert seen.errors == []
    assert seen.chart_divs == 3 and seen.charts == 3
    assert seen.headings == ["Perplexity vs size", "Speed vs size", "Every cell"]
    assert seen.offsite() == []


def one_cell(swept) -> tuple[dict, dict]:
    c = next(c for c in swept["result"]["cells"] if c["criterion"] == "wanda" and c["head_ratio"] == 0.5)
    folder = swept["root"] / c["run"]
    return json.loads((folder / "artifacts" / "result.json").read_text()), json.loads((folder / "plan.json").read_text())


def test_the_prune_page_shows_domains_widths_and_the_loss(swept):
    result, plan = one_cell(swept)
    w = widths(plan)
    assert w["kv_kept"] == [1, 1, 1] and w["kv_total"] == 2 and w["ch_kept"] == [32, 32, 32]
    assert block_flops_kept(plan) == pytest.approx(0.5)
    fig = widths_figure(plan, "channels")
    assert [t.name for t in fig.data] == ["kept", "removed"] and list(fig.data[1].y) == [32, 32, 32]
    page = prune_page(result, plan)
    assert [s.title for s in page.sections] == ["Perplexity", "Size and speed", "Kept widths per layer", "Recovery",
                                                "Setup"]
    assert page.n_figures == 3  # key-value groups, channels, recovery loss
    html = page.render()
    assert "stdlib-prose (task)" in html and "predicted from block FLOPs" in html and "forward FLOPs" in html
    ppl = html.split("<table")[1].split("</table>")[0]
    assert ppl.count("<tr>") == 1 + 2


@browser
def test_the_prune_report_in_the_browser(swept, tmp_path):
    result, plan = one_cell(swept)
    path = prune_page(result, plan).save(tmp_path / "run.html")
    seen = browser_check.open_page(path)
    assert seen.errors == [] and seen.chart_divs == 3 and seen.charts == 3
    assert seen.headings[:2] == ["Perplexity", "Size and speed"]


def test_a_run_without_plan_or_recovery_says_so(swept):
    result, _ = one_cell(swept)
    result = {**result, "recovered": None, "before": {k: v for k, v in result["before"].items() if k != "speed"}}
    page = prune_page(result)
    html = page.render()
    assert page.n_figures == 0
    assert "Absent: no plan was given" in html and "Absent: this run had no recovery" in html
    assert "Speed was not measured" in html and "prefill (s" not in html
    assert curve_page([]).n_figures == 0


@pytest.mark.parametrize("extra, words", [
    (["--criteria", "magnitude,vibes"], ["unknown criterion 'vibes'"]),
    (["--criteria", " , "], ["no criteria"]),
    (["--ratios", ","], ["no pruning ratios"]),
    (["--ratios", "0.3,1.0"], ["head ratio 1 is outside [0, 1)"]),
    (["--ratios", "0:0"], ["nothing would be pruned"]),
    (["--ratios", "0.3,x"], ["not a comma-separated list"]),
    (["--ratios", "0.3,0.3"], ["ratios repeat"]),
    (["--ratios", "0.1"], ["removes no key-value group of 2"]),
    (["--executor", "slurm"], ["unknown executor 'slurm'"]),
    (["--criteria", "entropy"], ["'entropy' scores heads only"]),
    (["--ratios", "0.5", "--length", "1000000"], ["fewer than one batch"]),
])
def test_bad_curve_inputs_are_one_line_before_any_cell(tiny, tmp_path, capsys, registered, extra, words):
    code, _, err = cli(capsys, "prune", "curve", "--model", tiny, "--out", tmp_path, *SMALL, *extra)
    one_line(code, err, *words)
    assert list(tmp_path.iterdir()) == []  # no run folder was made
