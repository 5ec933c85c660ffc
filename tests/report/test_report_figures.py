"""Figure builders: every chart shows the numbers of the observe result it was built from."""

from __future__ import annotations

import pytest
import torch

from report_pages import (CLEAN, CORRUPT, PROMPT, full_page, identity_tuned_lens, labelled_features, tiny_lm)
from shoestring.observe import (attention_pattern, direct_logit_attribution, geometry_summary, head_census,
                                logit_lens, patch_heads, patch_residual, probe_layers)
from shoestring.report import (contexts_html, dla_figures, head_heatmaps, lens_curves, lens_heatmap, lens_table,
                               patch_heatmap, pattern_heatmap, pca_figure, probe_figure)


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


def test_lens_table_curves_and_heatmap_side_by_side(lm):
    r = logit_lens(lm, PROMPT, target="w9")
    t = logit_lens(lm, PROMPT, target="w9", lens=identity_tuned_lens(lm))
    lenses = {"logit lens": r.rows(3), "tuned lens": t.rows(3)}
    cols, rows = lens_table(lenses, k=3)
    assert len(rows) == lm.n_layers and len(rows[0]) == len(cols)
    assert "logit lens: target rank" in cols and "tuned lens: KL to final" in cols
    i = cols.index("tuned lens: target rank")
    assert [row[i] for row in rows] == [x["target_rank"] for x in lenses["tuned lens"]]

    fig = lens_curves(lenses, "w9")
    by = {(tr.name, tr.xaxis): tr for tr in fig.data}
    assert {n for n, _ in by} == {"logit lens", "tuned lens"} and len(fig.data) == 2 * 3  # prob, rank, KL
    assert list(by[("tuned lens", "x")].y) == [x["target_prob"] for x in lenses["tuned lens"]]
    assert list(by[("logit lens", "x3")].y) == [x["kl_to_final"] for x in lenses["logit lens"]]
    assert list(by[("logit lens", "x2")].y) == [x["target_rank"] + 1 for x in lenses["logit lens"]]  # log axis

    heat = lens_heatmap(lenses, k=2).data[0]
    assert list(heat.x) == ["logit lens #1", "logit lens #2", "tuned lens #1", "tuned lens #2"]
    assert heat.z[0][2] == pytest.approx(lenses["tuned lens"][0]["top_probs"][0])
    assert heat.text[-1][1] == repr(lenses["logit lens"][-1]["top_tokens"][1])


def test_lens_without_target_shows_top1_and_kl(lm):
    rows = logit_lens(lm, PROMPT).rows(2)
    fig = lens_curves({"logit lens": rows})
    assert len(fig.data) == 2 and list(fig.data[0].y) == [x["top_probs"][0] for x in rows]
    cols, _ = lens_table({"logit lens": rows})
    assert "target rank" not in cols


def test_head_heatmaps_one_per_score(lm):
    census = head_census(lm, seq_len=8, batch=2)
    fig = head_heatmaps(census)
    assert [tr.name for tr in fig.data] == list(census.scores) and all(tr.type == "heatmap" for tr in fig.data)
    for tr in fig.data:
        torch.testing.assert_close(torch.tensor(tr.z), census.scores[tr.name].float())
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 1


def test_pattern_heatmap_keeps_repeated_tokens_apart(lm):
    tokens, p = attention_pattern(lm, "w5 w6 w5 w6", 1, 2)
    tr = pattern_heatmap(tokens, p, 1, 2).data[0]
    assert len(set(tr.x)) == len(tokens) == 4  # "0:'w5'" and "2:'w5'" stay two columns
    torch.testing.assert_close(torch.tensor(tr.z), p)


def test_probe_figure_band_and_baselines():
    feats, labels, texts = labelled_features()
    report = probe_layers(feats, labels, texts=texts, n_boot=50)
    rows = report.rows()
    fig = probe_figure(report)
    names = [tr.name for tr in fig.data]
    assert names[:2] == ["95% CI (bootstrap)", "accuracy"]
    assert {"control task", "selectivity", "shuffled labels", "majority class"} <= set(names)
    band = fig.data[0]
    assert list(band.y) == [r["ci_high"] for r in rows] + [r["ci_low"] for r in rows][::-1]
    assert list(fig.data[1].y) == [r["accuracy"] for r in rows]
    assert list(fig.data[names.index("selectivity")].y) == [r["selectivity"] for r in rows]


def test_pca_figure_colours_by_label_and_marks_clusters():
    feats, labels, texts = labelled_features()
    summary = geometry_summary(feats[2], labels)
    fig = pca_figure(summary, {0: "no", 1: "yes"}, texts)
    assert [tr.name for tr in fig.data] == ["no", "yes"]
    assert sum(len(tr.x) for tr in fig.data) == len(labels)
    first = fig.data[0]
    assert (first.x[0], first.y[0]) == tuple(summary["map"][labels.index(0)][:2])
    assert set(first.customdata) <= set(summary["clusters"])
    assert "PC1" in fig.layout.xaxis.title.text


def test_patch_heatmaps_residual_and_heads(lm):
    r = patch_residual(lm, CLEAN, CORRUPT, "w30", "w31")
    tr = patch_heatmap(r).data[0]
    assert list(tr.x) == r.columns and list(tr.y) == list(range(lm.n_layers))
    torch.testing.assert_close(torch.tensor(tr.z), r.grid.float())
    assert tr.zmin == -tr.zmax  # diverging scale centred at 0
    h = patch_heads(lm, CLEAN, CORRUPT, "w30", "w31")
    fig = patch_heatmap(h)
    assert list(fig.data[0].x) == h.columns and fig.layout.xaxis.title.text == "head"


def test_dla_figures_sum_to_the_parts(lm):
    r = direct_logit_attribution(lm, CLEAN, "w30", "w31")
    heads, bars = dla_figures(r)
    torch.testing.assert_close(torch.tensor(heads.data[0].z), r.heads.float())
    assert list(bars.data[0].y) == pytest.approx(r.mlps.tolist())


def test_contexts_html_marks_the_activating_token():
    rows = [{"value": 2.0, "token": " b", "context": "a", "tokens": ["a", " b"], "values": [0.5, 2.0]},
            {"value": 1.0, "token": "<", "context": "x", "tokens": ["x", "<"], "values": [-1.0, 1.0]}]
    html = contexts_html(rows)
    assert html.count('class="tok"') == 4 and html.count("underline") == 2 and "&lt;" in html


def test_full_page_has_every_section(lm):
    built = full_page(lm)
    html = built.page.render()
    assert built.page.n_figures == html.count('class="plotly-graph-div"') >= len(built.titles)
    for title in built.titles:
        assert f">{title}</h2>" in html.replace("&#x27;", "'")
    assert html.count('<span class="tok"') == built.token_spans
