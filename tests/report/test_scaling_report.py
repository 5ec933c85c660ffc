"""The compute-equivalent-gain report (report/scaling.py) from a synthetic scaling grid: every section is there,
the summary table carries each variant's numbers from the result, a one-seed grid renders without intervals and
says so, and the page draws in headless Chromium without a console error."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest

import browser_check
from shoestring.report.scaling import scaling_page
from shoestring.scaling.analysis import analyse
from shoestring.scaling.ceg import PowerLaw

BUDGETS = [1e12, 2e12, 4e12, 8e12]
MULT = {"baseline": 1.0, "layernorm": 2.0, "multi-query": 0.5}  # true CEGs
SECTIONS = ["Summary", "Loss vs compute", "CEG vs compute", "Training curves", "Loss vs wall-clock time", "Setup"]
CONFIG = {"corpus": "austen", "tokenizer": "bpe", "vocab_size": 1024, "max_chars": None,
          "shape": {"d_model": 128, "n_layer": 4, "n_head": 4, "context": 128}, "overrides": {},
          "train": {"batch_size": 16, "lr": 3e-3, "evals": 4}, "variants": list(MULT), "baseline": "baseline",
          "budgets": BUDGETS, "seeds": [0, 1, 2]}


def grid_points(seeds) -> list[dict]:
    """Cells whose losses follow one power law, each variant worth ``MULT`` times the baseline's compute."""
    rng, law, pts = np.random.default_rng(0), PowerLaw(2.0, 1e4, 0.35), []
    for v, m in MULT.items():
        for s in seeds:
            for b in BUDGETS:
                curve = [{"step": k * 10, "tokens": k * 1000, "flops": b * k / 4, "seconds": b * k / 4e10,
                          "train_loss": 1.0, "lr": 1e-3, "val_loss": float(law.loss(m * b * k / 4) + rng.normal(0, 0.003))}
                         for k in (1, 2, 3, 4)]
                pts.append({"variant": v, "seed": s, "budget": b, "flops": b, "seconds": b / 1e10, "steps": 40,
                            "tokens": 4000, "params": 1000 + 7 * (v != "baseline"), "flops_per_token": 1e6,
                            "val_loss": curve[-1]["val_loss"], "curve": curve})
    return pts


def make_result(seeds) -> dict:
    meta = {"config": {**CONFIG, "seeds": list(seeds)}, "flops_per_token": {v: 1.5e6 for v in MULT}}
    result = analyse(grid_points(seeds), list(MULT), "baseline", BUDGETS, list(seeds), meta=meta, n_boot=30)
    return json.loads(json.dumps(result))  # as the report reads it back from result.json


_no_network = browser_check.loopback_guard  # the suite's network guard, widened to loopback for chromedriver


@pytest.fixture(scope="module")
def result():
    return make_result([0, 1, 2])


@pytest.fixture(scope="module")
def one_seed():
    return make_result([0])


class Tables(HTMLParser):
    """Rows of the summary table, keyed by variant: a list of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows, self.head, self._in, self._row, self._cell = {}, [], False, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and "scaling-summary" in (dict(attrs).get("class") or ""):
            self._in = True
        elif self._in and tag == "tr":
            self._row = []
        elif self._in and tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif self._in and tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif self._in and tag == "tr" and self._row:
            if not self.head:
                self.head = self._row
            else:
                self.rows[self._row[0]] = dict(zip(self.head, self._row))
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def summary_of(html: str) -> Tables:
    t = Tables()
    t.feed(html)
    return t


def test_the_page_has_every_section(result):
    page = scaling_page(result, meta={"run": "scaling-0001"})
    assert [s.title for s in page.sections] == SECTIONS
    assert page.n_figures == 4  # loss-compute, CEG(C), curves, time
    html = page.render()
    for text in ("scaling-0001", "austen", "d_model=128", "1e12, 2e12, 4e12, 8e12", "1.5e6", "1,007",
                 "by construction", "time-CEG", "E + A C^-alpha"):
        assert text in html, text
    assert "one seed" not in html and "Absent" not in html
    fig = page.sections[1].blocks[0][0]
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == list(MULT)
    assert sum(t.mode == "lines" for t in fig.data) == 3  # a fitted curve per variant


def test_the_summary_table_carries_the_results_numbers(result):
    rows = summary_of(scaling_page(result).render()).rows
    assert list(rows) == ["layernorm", "multi-query"]  # the baseline is the reference, not a row
    by = {r["variant"]: r for r in result["table"]}
    ln, mq = by["layernorm"], by["multi-query"]
    assert ln["ceg"] == pytest.approx(2.0, rel=0.1) and ln["low"] < 2.0 < ln["high"]
    head = next(k for k in rows["layernorm"] if k.startswith("CEG at"))
    assert head == "CEG at 2.83e12 FLOPs [95%]"
    assert rows["layernorm"][head] == f"{ln['ceg']:.3g} [{ln['low']:.3g}, {ln['high']:.3g}] gain"
    assert rows["multi-query"][head].startswith(f"{mq['ceg']:.3g} [{mq['low']:.3g}, {mq['high']:.3g}] loss")
    slope = rows["layernorm"]["CEG(C) slope [95%], scaling"]
    assert slope == f"{ln['slope']:.3f} [{ln['slope_low']:.3f}, {ln['slope_high']:.3f}] flat"
    assert rows["layernorm"]["time-CEG [95%]"].startswith(f"{ln['time_ceg']:.3g} [{ln['time_low']:.3g}, ")
    ro = result["readoff"]["layernorm"]["flops"]
    assert rows["layernorm"]["read-off CEG, FLOPs (range)"] == f"{ro['mean']:.3g} ({ro['min']:.3g}\u2013{ro['max']:.3g})"
    assert rows["layernorm"]["reached (seeds)"] == "3/3"
    assert rows["multi-query"]["read-off CEG, FLOPs (range)"] == "never reached"
    assert rows["layernorm"]["paper"] == "1.84" and rows["multi-query"]["paper"] == "never reaches the baseline's loss"
    # both directions match the paper's: layernorm a gain (paper 1.84), multi-query a loss (never reaches)
    assert rows["layernorm"]["agrees"].startswith("yes") and rows["multi-query"]["agrees"].startswith("yes")


def test_a_disagreement_shows_as_no(result):
    flipped = json.loads(json.dumps(result))
    row = next(r for r in flipped["table"] if r["variant"] == "layernorm")
    row.update(direction="loss", agrees=False)
    rows = summary_of(scaling_page(flipped).render()).rows
    assert rows["layernorm"]["agrees"] == "no ours: loss; paper: gain"


def test_one_seed_renders_without_intervals_and_says_so(one_seed):
    assert one_seed["ceg"] == {} and "ceg" not in one_seed["table"][0]
    page = scaling_page(one_seed)
    assert [s.title for s in page.sections] == SECTIONS
    assert page.n_figures == 3  # no CEG(C) figure
    html = page.render()
    banner = html[html.index('class="scaling-note"'):html.index('<table class="data scaling-summary"')]
    assert "one seed: no intervals (train at least 2 seeds)" in banner and "need at least 2 seeds" in banner
    rows = summary_of(html).rows
    assert list(rows) == ["layernorm", "multi-query"]
    for row in rows.values():
        assert not any("[" in v for k, v in row.items() if k != "variant"), row
        assert row["agrees"] == "\u2014" and row[next(k for k in row if k.startswith("CEG at"))] == "\u2014"
    assert rows["layernorm"]["read-off CEG, FLOPs (range)"] == f"{one_seed['readoff']['layernorm']['flops']['mean']:.3g}"
    assert rows["layernorm"]["reached (seeds)"] == "1/1"


def test_a_bare_result_still_renders():
    """Without meta, points or readoff (a hand-made result): every section, dashes and n/a."""
    bare = {"variants": ["baseline", "rope"], "baseline": "baseline", "budgets": BUDGETS, "seeds": [0],
            "table": [{"variant": "rope", "paper": 1.87, "paper_note": None, "readoff_flops": None,
                       "readoff_steps": None, "readoff_reached": "0/1"}]}
    html = scaling_page(bare).render()
    assert summary_of(html).rows["rope"]["paper"] == "1.87" and "n/a" in html


@pytest.mark.skipif(browser_check.available() is not None, reason=str(browser_check.available()))
def test_the_scaling_report_in_the_browser(result, one_seed, tmp_path):
    for name, res in (("three", result), ("one", one_seed)):
        page = scaling_page(res)
        path = page.save(tmp_path / f"{name}.html")
        browser_check.assert_renders(page, path, SECTIONS, name)
