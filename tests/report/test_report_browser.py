"""The report in a real headless browser (Debian's chromium, driven by Selenium): it renders every chart,
logs no console error and requests nothing from the network; broken pages are caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import browser_check
from report_pages import full_page
from shoestring.report import Page

pytestmark = pytest.mark.skipif(browser_check.available() is not None, reason=str(browser_check.available()))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    browser_check.loopback_only(monkeypatch)


def off_machine(urls) -> list[str]:
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))]


@pytest.fixture(scope="module")
def built():
    return full_page()


def test_the_page_renders_every_chart_without_errors(built, tmp_path):
    path = built.page.save(tmp_path / "report.html")
    seen = browser_check.open_page(path)
    assert seen.errors == []
    assert seen.chart_divs == built.page.n_figures and seen.charts == seen.chart_divs
    assert seen.headings == built.titles
    assert seen.titled_spans == built.token_spans > 0
    assert off_machine(seen.requests) == [] and seen.requests[0] == path.resolve().as_uri()


def test_a_broken_script_is_caught(tmp_path):
    page = Page("broken")
    page.section("A chart").figure(_scatter())
    page.section("Bad").html("<script>callSomethingThatDoesNotExist();</script>")
    seen = browser_check.open_page(page.save(tmp_path / "broken.html"))
    assert any("callSomethingThatDoesNotExist" in e for e in seen.errors), seen.errors
    assert seen.charts == 1  # the rest of the page still works


def test_a_chart_that_fails_to_draw_is_counted(tmp_path):
    page = Page("half drawn")
    page.section("Good").figure(_scatter())
    page.section("Never drawn").html('<div class="plotly-graph-div" id="orphan"></div>')
    seen = browser_check.open_page(page.save(tmp_path / "half.html"))
    assert seen.chart_divs == 2 and seen.charts == 1


def test_a_network_request_is_blocked_and_reported(tmp_path):
    """A page that tries a CDN is refused by the page's Content-Security-Policy, which logs an error;
    the static check finds the reference too."""
    page = Page("cdn")
    page.section("x").html('<script src="https://cdn.example.invalid/plotly.min.js"></script>')
    path = page.save(tmp_path / "cdn.html")
    assert browser_check.external_references(path.read_text()) == ['<script src=https://cdn.example.invalid/plotly.min.js>']
    seen = browser_check.open_page(path)
    assert seen.errors and any("Content Security Policy" in e or "cdn.example.invalid" in e for e in seen.errors)


@pytest.mark.slow
def test_the_smollm2_tour_page_in_the_browser(tmp_path, capsys):
    """`shoestring observe tour` on the real model: one page, every chart drawn, no console error."""
    from shoestring.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["observe", "tour", "smollm2-135m", "--out", str(tmp_path), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert exc.value.code == 0
    lens = summary["lens"]["rows"]
    assert lens[-1]["target_rank"] == 0 and lens[-1]["kl_to_final"] == pytest.approx(0, abs=1e-3)
    heads = summary["induction_heads"]
    assert heads == sorted(heads, key=lambda h: -h["score"])
    best = next(r for r in summary["probe"]["rows"] if r["layer"] == summary["probe"]["best_layer"])
    assert best["accuracy"] > best["shuffled"] and best["accuracy"] > best["control"]
    # the strongest single patch sits where the two prompts differ (the subject) or on the last token
    tok = lm_tokenizer()
    clean, corrupt = (tok(summary["config"][k])["input_ids"] for k in ("clean", "corrupt"))
    where = {i for i, (a, b) in enumerate(zip(clean, corrupt)) if a != b} | {len(corrupt) - 1}
    assert int(summary["patching"]["top"][0]["column"].split(":")[0]) in where
    report = Path(summary["report"])
    seen = browser_check.open_page(report)
    assert seen.errors == [] and seen.charts == seen.chart_divs == report.read_text().count('class="plotly-graph-div"')
    assert off_machine(seen.requests) == []
    for title in ("Logit lens", "Attention-head census", "Linear probes", "Activation patching"):
        assert title in seen.headings
    assert seen.titled_spans > 0


def lm_tokenizer():
    from transformers import AutoTokenizer

    from shoestring.models.bundled import cached_dir

    return AutoTokenizer.from_pretrained(cached_dir())


def _scatter():
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1]))


def test_the_steering_report_in_the_browser(tmp_path, capsys):
    """`shoestring steer run` on a tiny model: its report draws every chart, shows the samples side by side."""
    from cli_helpers import cli, tiny_smol_dir

    tiny = tiny_smol_dir(tmp_path / "tiny")
    spec = tmp_path / "spec.toml"
    spec.write_text(f'model = "{tiny}"\n[prompts]\nbuiltin = "sentiment"\nlimit = 3\n[sweep]\nlayers = [0, 1]\n'
                    'scales = [2.0, 40.0]\n[generation]\nmax_new_tokens = 4\n[[judges]]\nname = "sentiment"\n'
                    '[[judges]]\nname = "fluency"\n[side_effects]\ntexts = 1\ncontext_length = 16\n')
    code, out, err = cli(capsys, "steer", "run", spec, "--out", tmp_path / "runs", "--json")
    assert code == 0, err
    report = Path(json.loads(out)["report"])
    seen = browser_check.open_page(report)
    assert seen.errors == [] and seen.chart_divs == 2 * (1 + 2) and seen.charts == seen.chart_divs
    assert "Before / after" in seen.headings and "Effects" in seen.headings
    assert off_machine(seen.requests) == []
    html = report.read_text()
    assert html.count("<tr><td><b>") == 3  # one row per prompt: unsteered | steered | control
