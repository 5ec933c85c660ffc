"""The page builder and token highlighting: plotly.js inlined once, no network references, escaping, atomic save."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from browser_check import external_references
from shoestring.errors import ShoestringError
from shoestring.report import Page, highlight_tokens, table_html
from shoestring.report.highlight import colour


def two_figure_page() -> Page:
    page = Page("a <page> & more", subtitle="sub", meta={"model": "m<1>"})
    sec = page.section("First")
    sec.figure(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), "caption <1>")
    sec.table(["a", "b"], [[1, 0.5], ["<x>", "y"]])
    page.section("First").figure(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], x=["</script>", "b"])))
    return page


def test_plotly_js_is_inlined_exactly_once():
    html = two_figure_page().render()
    marker = get_plotlyjs()[:300]
    assert html.count(marker) == 1
    assert html.count('class="plotly-graph-div"') == 2
    assert html.count("Plotly.newPlot(") == 2
    assert get_plotlyjs() not in Page("empty").render()  # no figure: no 4 MB of JavaScript


def test_no_network_references_and_a_csp_that_forbids_them():
    html = two_figure_page().render()
    assert external_references(html) == []
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=", html)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    # the check itself finds what it should
    bad = '<html><script src="https://cdn.plot.ly/plotly.min.js"></script><link href="//fonts.x/a.css"></html>'
    assert len(external_references(bad)) == 2


def test_text_is_escaped_everywhere():
    html = two_figure_page().render()
    assert "<title>a &lt;page&gt; &amp; more</title>" in html
    assert "m&lt;1&gt;" in html and "caption &lt;1&gt;" in html and "<td>&lt;x&gt;</td>" in html
    assert "</script>\", \"b\"" not in html  # a token that closes a script tag stays inside the figure's JSON
    body = html.split("</head>", 1)[1]
    assert body.count("<script") == body.count("</script>") == 2  # one per figure, none broken open


def test_sections_get_unique_ids_and_a_table_of_contents():
    html = two_figure_page().render()
    assert 'id="first"' in html and 'id="first-2"' in html
    assert '<a href="#first-2">' in html


def test_table_formats_floats_and_escapes():
    html = table_html(["x"], [[1 / 3], ["<b>"]])
    assert "<td>0.3333</td>" in html and "&lt;b&gt;" in html


def test_save_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "report.html"
    Page("one").save(path)
    Page("two").save(path)
    assert "<title>two</title>" in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary file left behind


def test_highlight_spans_escape_and_colour():
    tokens, values = ["The", " <script>alert(1)</script>", " cat\n", ' "q"'], [0.5, -2.0, 2.0, 0.0]
    html = highlight_tokens(tokens, values, label="L<1>")
    spans = re.findall(r'<span class="tok" style="([^"]*)" title="([^"]*)">([^<]*)</span>', html)
    assert len(spans) == len(tokens)
    assert "<script>" not in html and "&lt;script&gt;" in html and "L&lt;1&gt;" in html
    assert "⏎" in spans[2][2]  # a newline is visible
    # the title names the token and its value
    for (_, title, _), v in zip(spans, values):
        assert f"{v:+.3f}" in title
    # colour: the sign picks red or blue, |value| the opacity; zero is (almost) transparent
    alpha = [float(re.search(r"([0-9.]+)\)$", s[0]).group(1)) if "rgba" in s[0] else 0.0 for s in spans]
    assert alpha[1] == alpha[2] > alpha[0] > alpha[3] == 0.0
    assert spans[1][0] != spans[2][0]


def test_highlight_shared_scale_nan_and_mismatch():
    assert colour(1.0, 2.0) != colour(2.0, 2.0)
    assert colour(float("nan"), 1.0) == "transparent" and colour(1.0, 0.0) == "transparent"
    html = highlight_tokens(["a", "b"], [float("nan"), 1.0])
    assert "n/a" in html
    with pytest.raises(ShoestringError, match="2 tokens but 1 values"):
        highlight_tokens(["a", "b"], [1.0])
