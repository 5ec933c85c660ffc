"""The KV-cache benchmark report (report/kv.py) from synthetic ``shoestring kv bench`` results: every section is
there, the summary table marks the best policy the right way round, a partial run says what it lacks, and the
page draws in headless Chromium without a console error."""

from __future__ import annotations

import json
import math
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import browser_check
from shoestring.report.kv import (absent_parts, best_policies, cost_lengths, cost_rows, default_budget, kv_page,
                                  nll_figure, quality_figure, retrieval_grid, retrieval_heatmaps)

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "kv_result_sample.json"
POLICIES = ["full", "window", "streaming", "h2o", "snapkv"]
BUDGETS = [0.5, 0.25, 0.125]
LENGTHS = [1024, 2048, 4096]
DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
N_LAYERS = 30
# Perplexity means chosen so that the best (lowest) policy differs per budget, and the highest never wins.
PPL = {("full", None): 11.8,
       ("window", 0.5): 19.0, ("streaming", 0.5): 12.6, ("h2o", 0.5): 12.2, ("snapkv", 0.5): 12.4,
       ("window", 0.25): 31.0, ("streaming", 0.25): 13.1, ("h2o", 0.25): 13.4, ("snapkv", 0.25): 13.9,
       ("window", 0.125): 48.0, ("streaming", 0.125): 14.9, ("h2o", 0.125): 15.6, ("snapkv", 0.125): 14.9,
       ("window", 256): 55.0, ("streaming", 256): 15.8, ("h2o", 256): 16.4, ("snapkv", 256): 16.0}
PPL_BEST = {0.5: ["h2o"], 0.25: ["streaming"], 0.125: ["streaming", "snapkv"]}  # a tie at 12.5%


def _tokens(budget, length: int) -> int:
    """Tokens per layer of a budget: a fraction of ``length``, or a token count (an int)."""
    return length if budget is None else budget if isinstance(budget, int) else int(budget * length)


def _kept(policy: str, budget, depth: float, length: int, rng: random.Random) -> float:
    """Whether a policy keeps the needle (a caricature: windows keep the tail, snapkv sees the question)."""
    if budget is None:
        return 1.0
    frac = _tokens(budget, length) / length
    if policy in ("window", "streaming"):
        return float(depth >= 1 - frac or (policy == "streaming" and depth == 0.0 and length <= 1024))
    if policy == "h2o":
        return float(rng.random() < 0.35 + frac)
    return float(rng.random() < 0.6 + 0.7 * frac - length / 40_000)  # snapkv


def _summarise(rows: list[dict], full_mean: float, higher: bool) -> list[dict]:
    """Mean, a normal-approximation 95% interval (clipped to [0, 1] for accuracy) and the share of the full
    cache's quality kept (policy / full, or full / policy where lower is better), as the bench writes them."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["task"], r["policy"], r["budget"]), []).append(r["score"])
    out = []
    for (task, policy, budget), vals in groups.items():
        m = sum(vals) / len(vals)
        if task == "perplexity":  # exact means for the table (the +-0.3 of the seeds average out, up to rounding)
            m = PPL[(policy, budget)]
        half = 1.96 * math.sqrt(sum((v - m) ** 2 for v in vals) / max(1, len(vals) - 1) / len(vals))
        lo, hi = (max(0.0, m - half), min(1.0, m + half)) if higher else (m - half, m + half)
        out.append({"task": task, "policy": policy, "budget": budget, "mean": m, "ci_low": lo, "ci_high": hi,
                    "n": len(vals), "relative_to_full": m / full_mean if higher else full_mean / m})
    return out


def synthetic_result(seeds=(0, 1), token_budgets=()) -> dict:
    """A full ``kv bench`` result: passkey over lengths x depths, perplexity with curves, cost rows; budgets as
    fractions, and as token counts (ints) when ``token_budgets`` names some."""
    rng = random.Random(0)
    settings = [("full", None)] + [(p, b) for p in POLICIES[1:] for b in [*BUDGETS, *token_budgets]]
    scores = []
    for policy, budget in settings:
        for length in LENGTHS:
            for depth in DEPTHS:
                for seed in seeds:
                    scores.append({"task": "passkey", "policy": policy, "budget": budget, "length": length,
                                   "depth": depth, "seed": seed, "score": _kept(policy, budget, depth, length, rng)})
    ppl_rows = [{"task": "perplexity", "policy": p, "budget": b, "length": 4096, "depth": None, "seed": s,
                 "score": PPL[(p, b)] + (0.3 if s else -0.3)} for p, b in settings for s in seeds]
    full_pass = sum(r["score"] for r in scores if r["policy"] == "full") / sum(r["policy"] == "full" for r in scores)
    summary = _summarise(scores, full_pass, True) + _summarise(ppl_rows, PPL[("full", None)], False)
    curves = []
    positions = list(range(128, 4097, 128))
    for policy, budget in settings:
        w = None if budget is None else _tokens(budget, 4096)
        nll = []
        for x in positions:
            base = 3.4 - 0.35 * math.log(x) / math.log(4096)
            past = w is not None and x > w
            bump = {"window": 2.2, "streaming": 0.05, "h2o": 0.12, "snapkv": 0.1}.get(policy, 0.0) if past else 0.0
            nll.append(round(base + bump, 4))
        curves.append({"policy": policy, "budget": budget, "length": 4096, "positions": positions, "nll": nll,
                       "window_tokens": w})
    cost = []
    per_token = 2 * 3 * 64 * 4  # k and v, 3 kv heads of 64, float32
    for policy, budget in settings:
        for length in (2048, 4096):
            bt = _tokens(budget, length)
            toks = [bt] * N_LAYERS if policy != "snapkv" else [int(bt * (1.5 - i / (N_LAYERS - 1)))
                                                                 for i in range(N_LAYERS)]
            cost.append({"policy": policy, "budget": budget, "length": length,
                         "budget_tokens": None if budget is None else bt,
                         "cache_tokens_per_layer": toks, "cache_bytes_per_layer": [t * per_token for t in toks],
                         "expected_bytes": sum(toks) * per_token, "bytes_error": 0.0,
                         "peak_cache_tokens": max(toks) + (0 if budget is None else 128),
                         "peak_rss_mb": 700.0 + bt / 20, "prefill_s": length / 1700, "decode_s": 0.8,
                         "prefill_tokens_per_s": 1700.0, "decode_tokens_per_s": 40.0 - 10 * bt / length})
    return {"model": "SmolLM2-135M-Instruct", "n_layers": N_LAYERS, "mode": "query-agnostic", "chunk": 128,
            "policies": POLICIES, "budgets": [*BUDGETS, *token_budgets],
            "tasks": {"passkey": {"higher_is_better": True, "metric": "accuracy"},
                      "perplexity": {"higher_is_better": False, "metric": "perplexity"}},
            "scores": scores + ppl_rows, "summary": summary, "curves": curves, "cost": cost}


def write_fixture(path: Path = FIXTURE) -> None:
    """(Re)write tests/data/kv_result_sample.json from :func:`synthetic_result` (one seed), a row a line:
    ``python tests/report/test_kv_report.py``."""
    r = synthetic_result(seeds=(0,))
    lines = []
    for i, (k, v) in enumerate(r.items()):
        end = "," if i < len(r) - 1 else ""
        if isinstance(v, list) and v and isinstance(v[0], dict):
            rows = ",\n".join("  " + json.dumps(x) for x in v)
            lines.append(f" {json.dumps(k)}: [\n{rows}\n ]{end}")
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}{end}")
    path.write_text("{\n" + "\n".join(lines) + "\n}\n")


def only_perplexity(result: dict) -> dict:
    keep = dict(result)
    keep["tasks"] = {"perplexity": result["tasks"]["perplexity"]}
    keep["scores"] = [r for r in result["scores"] if r["task"] == "perplexity"]
    keep["summary"] = [r for r in result["summary"] if r["task"] == "perplexity"]
    return keep


class Tables(HTMLParser):
    """The summary tables: ``{task: {policy: {column: (text, best)}}}``."""

    def __init__(self):
        super().__init__()
        self.tables, self.task, self.row, self.head, self.cell = {}, None, None, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "kv-summary" in (a.get("class") or ""):
            self.task, self.head = a["data-task"], []
            self.tables[self.task] = {}
        elif self.task and tag in ("td", "th"):
            self.cell = ["", a.get("class") == "best"]
        elif self.task and tag == "tr":
            self.row = []

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data

    def handle_endtag(self, tag):
        if not self.task:
            return
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(tuple(self.cell))
            self.cell = None
        elif tag == "tr":
            if not self.head:
                self.head = [t for t, _ in self.row]
            else:
                self.tables[self.task][self.row[0][0]] = dict(zip(self.head[1:], self.row[1:]))
        elif tag == "table":
            self.task = None


def tables_of(html: str) -> dict:
    t = Tables()
    t.feed(html)
    return t.tables


_no_network = browser_check.loopback_guard  # the suite's network guard, widened to loopback for chromedriver


@pytest.fixture(scope="module")
def result():
    return synthetic_result()


def section_titles(page):
    return [s.title for s in page.sections]


def test_the_page_has_every_section(result):
    page = kv_page(result, meta={"run": "kv-0001"})
    assert section_titles(page) == ["Design", "Quality vs budget: passkey", "Quality vs budget: perplexity",
                                    "Retrieval heat maps", "Perplexity along the text", "Cost"]
    html = page.render()
    assert "Mode: query-agnostic." in html and "kv-0001" in html
    for text in ("12.5%", "1,024, 2,048, 4,096", "needle depths", "perplexity, lower is better"):
        assert text in html, text
    # quality (2) + one heat map figure + NLL at 3 budgets + cache bytes per layer
    assert page.n_figures == 2 + 1 + 3 + 1
    assert "Absent" not in html and absent_parts(result) == []


def test_the_best_policy_is_marked_the_right_way_round(result):
    """Lower is better for perplexity: a max would pick the plain window (the worst); ties are both marked;
    the full cache (the highest accuracy) is never a contender."""
    assert best_policies(result, "perplexity") == PPL_BEST
    tables = tables_of(kv_page(result).render())
    ppl = tables["perplexity"]
    for budget, label in ((0.5, "50%"), (0.25, "25%"), (0.125, "12.5%")):
        marked = sorted(p for p, cells in ppl.items() if cells[label][1])
        assert marked == sorted(PPL_BEST[budget]), (label, marked)
        assert "\u2605" in ppl[PPL_BEST[budget][0]][label][0]
    assert not ppl["window"]["50%"][1] and ppl["window"]["50%"][0].startswith("19.00")
    assert ppl["full"]["full cache"][0].startswith("11.80") and not ppl["full"]["full cache"][1]
    assert ppl["full"]["50%"][0] == "\u2014"
    passkey = tables["passkey"]
    means = {(r["policy"], r["budget"]): r["mean"] for r in result["summary"] if r["task"] == "passkey"}
    for budget, label in ((0.5, "50%"), (0.25, "25%"), (0.125, "12.5%")):
        top = max(means[(p, budget)] for p in POLICIES[1:])
        assert sorted(p for p, c in passkey.items() if c[label][1]) == sorted(
            p for p in POLICIES[1:] if means[(p, budget)] == top)
    assert not any(c[1] for c in passkey["full"].values())
    assert "% of full" in passkey["snapkv"]["50%"][0] and "n=30" in passkey["snapkv"]["50%"][0]


def test_the_quality_figure_has_a_band_and_line_per_policy_and_the_full_reference(result):
    fig = quality_figure(result, "passkey")
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == ["full cache", "window", "streaming", "h2o", "snapkv"]
    assert sum(t.fill == "toself" for t in fig.data) == 4
    assert any(s.type == "line" and s.line.dash == "dash" for s in fig.layout.shapes)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.title.text == "accuracy"
    snap = next(t for t in fig.data if t.name == "snapkv")
    assert list(snap.x) == [0.125, 0.25, 0.5]
    assert quality_figure(result, "perplexity", log_x=False).layout.xaxis.type == "linear"


def test_retrieval_heat_maps_are_length_by_depth_per_policy(result):
    assert default_budget(result) == 0.5
    lengths, depths, grid = retrieval_grid(result, "passkey", "window", 0.5)
    assert lengths == LENGTHS and depths == DEPTHS
    assert grid[0] == [0.0, 0.0, 1.0, 1.0, 1.0]  # the window keeps the second half of the text
    assert retrieval_grid(result, "passkey", "full", None)[2] == [[1.0] * 5] * 3
    fig = retrieval_heatmaps(result, "passkey")
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["full cache", "window @ 50%", "streaming @ 50%", "h2o @ 50%", "snapkv @ 50%"]
    assert len(fig.data) == 5 and all(t.coloraxis == "coloraxis" for t in fig.data)
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
    assert [a.text for a in retrieval_heatmaps(result, "passkey", 0.125).layout.annotations][1] == "window @ 12.5%"


def test_the_nll_figure_marks_the_window(result):
    fig = nll_figure(result, 0.25)
    assert [t.name for t in fig.data] == ["full cache", "window", "streaming", "h2o", "snapkv"]
    assert fig.data[0].line.dash == "dash"
    vlines = [s for s in fig.layout.shapes if s.x0 == s.x1]
    assert [s.x0 for s in vlines] == [1024]


def test_cost_rows_are_formatted(result):
    assert cost_lengths(result) == [2048, 4096]
    rows = cost_rows(result, 4096)
    assert len(rows) == 13 and rows[0][:4] == ["full", "full", "all", "4,096"]
    assert [r[1] for r in rows] == ["full"] + ["50%"] * 4 + ["25%"] * 4 + ["12.5%"] * 4
    snap = next(r for r in rows if r[0] == "snapkv" and r[1] == "50%")
    assert snap[2] == "2,048" and snap[3] == "1,024-3,072" and snap[6] == "0.00%"
    assert snap[4] == snap[5] == "89.98\u00a0MiB"
    assert next(r for r in rows if r[0] == "window" and r[1] == "25%")[3] == "1,024"


def test_token_budgets_get_their_own_axis_and_columns():
    """``--budget-tokens 256`` writes int budgets: labelled in tokens, after the fractions, on a figure of their
    own (not at 25600% of the context); extra keys the bench writes (quant, config) show in the design."""
    r = synthetic_result(seeds=(0,), token_budgets=(256,))
    r.update(quant=4, config={"policies": ["window"], "budget_token_list": [256]})
    for c in r["cost"]:
        c["memory_how"] = "process RSS above the start, sampled"
    del r["n_layers"]
    assert best_policies(r, "perplexity")[256] == ["streaming"]
    page = kv_page(r)
    quality = next(s for s in page.sections if s.title == "Quality vs budget: perplexity")
    assert quality.n_figures == 2
    tokens_fig = quality_figure(r, "perplexity", tokens=True)
    assert tokens_fig.layout.xaxis.title.text == "cache budget (tokens per layer)"
    assert {tuple(t.x) for t in tokens_fig.data if t.showlegend is not False} == {(256,)}
    assert all(0.1 <= x <= 1.0 for t in quality_figure(r, "perplexity").data for x in t.x)
    ppl = tables_of(page.render())["perplexity"]
    assert list(ppl["window"]) == ["full cache", "50%", "25%", "12.5%", "256 tok"]
    assert ppl["streaming"]["256 tok"][1] and not ppl["window"]["256 tok"][1]
    html = page.render()
    assert "4 bits" in html and "budget_token_list" in html and "a 256-token cache" in html
    assert "peak memory: process RSS above the start, sampled." in html
    assert re.search(r"<td>layers</td><td>30</td>", html)  # from the cost rows when n_layers is missing
    assert [row[1] for row in cost_rows(r, 4096)][-2:] == ["256 tok", "256 tok"]


def test_a_run_with_only_perplexity_says_retrieval_is_absent(result):
    page = kv_page(only_perplexity(result))
    assert section_titles(page) == ["Design", "Quality vs budget: perplexity", "Retrieval heat maps",
                                    "Perplexity along the text", "Cost"]
    retrieval = next(s for s in page.sections if s.title == "Retrieval heat maps")
    assert retrieval.n_figures == 0
    html = page.render()
    assert "Absent: this run has no retrieval task" in html
    assert re.search(r"Absent from this run: retrieval", html)


def test_an_empty_run_renders_and_says_what_is_absent():
    bare = {"model": "m", "n_layers": 2, "mode": "query-aware", "chunk": 64, "policies": ["full", "window"],
            "budgets": [0.5], "tasks": {}, "scores": [], "summary": [], "curves": [], "cost": []}
    page = kv_page(bare)
    html = page.render()
    assert page.n_figures == 0 and "Mode: query-aware." in html
    for text in ("no summary rows", "no retrieval task", "no perplexity curves", "no cost measurements"):
        assert text in html, text
    assert kv_page({}).render().count("Absent") >= 4  # not even the keys


def test_names_are_escaped(result):
    evil = json.loads(json.dumps(result))
    for r in evil["summary"] + evil["scores"] + evil["curves"] + evil["cost"]:
        if r["policy"] == "h2o":
            r["policy"] = "<i>h2o</i></script>"
    evil["policies"] = [p if p != "h2o" else "<i>h2o</i></script>" for p in evil["policies"]]
    evil["model"] = "<script>alert(1)</script>"
    html = kv_page(evil).render()
    assert "&lt;i&gt;h2o&lt;/i&gt;&lt;/script&gt;" in html and "&lt;script&gt;alert(1)" in html
    outside = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)  # figure JSON lives in scripts
    assert "<i>h2o" not in outside and "alert(1)" not in outside.replace("&lt;script&gt;alert(1)", "")
    assert html.count("</script>") == html.count("<script")  # a name cannot close a figure's script


def test_the_sample_fixture_is_a_renderable_result():
    """tests/data/kv_result_sample.json: one result as the bench writes it (nulls and all), for other tests."""
    sample = json.loads(FIXTURE.read_text())
    assert set(sample) == {"model", "n_layers", "mode", "chunk", "policies", "budgets", "tasks", "scores", "summary",
                           "curves", "cost"}
    page = kv_page(sample)
    assert "Retrieval heat maps" in section_titles(page) and page.n_figures >= 5
    assert best_policies(sample, "perplexity") == PPL_BEST


@pytest.mark.skipif(browser_check.available() is not None, reason=str(browser_check.available()))
def test_the_kv_report_in_the_browser(result, tmp_path):
    for name, res in (("full", result), ("ppl", only_perplexity(result))):
        page = kv_page(res)
        path = page.save(tmp_path / f"{name}.html")
        browser_check.assert_renders(page, path, section_titles(page), name)


if __name__ == "__main__":
    write_fixture()
