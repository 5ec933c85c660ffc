"""Report pieces for linear probes: accuracy over layers with its CI band, the control task, the
shuffled-label baseline and selectivity (Hewitt & Liang 2019, https://arxiv.org/abs/1909.03368)."""

from __future__ import annotations

from .page import Page, Section
from .style import COLOURS, figure


def probe_figure(report, title: str | None = None):
    """Validation score per layer with the bootstrap 95% CI as a band, plus control, shuffled, selectivity
    and chance (``report``: :class:`~shoestring.observe.ProbeReport`)."""
    rows = report.rows()
    metric = report.metric
    x = [str(r["layer"]) for r in rows]
    fig = figure(420, title=dict(text=title or f"probe {metric} by layer"),
                 legend=dict(orientation="h", y=-0.2))
    fig.add_scatter(x=x + x[::-1], y=[r["ci_high"] for r in rows] + [r["ci_low"] for r in rows][::-1],
                    fill="toself", fillcolor="rgba(31, 119, 180, 0.18)", line=dict(width=0), hoverinfo="skip", mode="lines",
                    name="95% CI (bootstrap)")
    fig.add_scatter(x=x, y=[r[metric] for r in rows], mode="lines+markers", name=metric,
                    line=dict(color=COLOURS[0], width=2.5),
                    customdata=[[r["ci_low"], r["ci_high"]] for r in rows],
                    hovertemplate="layer %{x}: %{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>")
    if "control" in rows[0]:
        fig.add_scatter(x=x, y=[r["control"] for r in rows], mode="lines+markers", name="control task",
                        line=dict(color=COLOURS[4], dash="dot"))
        fig.add_scatter(x=x, y=[r["selectivity"] for r in rows], mode="lines+markers", name="selectivity",
                        line=dict(color=COLOURS[2]))
    if "shuffled" in rows[0]:
        fig.add_scatter(x=x, y=[r["shuffled"] for r in rows], mode="lines+markers", name="shuffled labels",
                        line=dict(color=COLOURS[6], dash="dash"))
    if report.task == "classification":
        fig.add_scatter(x=[x[0], x[-1]], y=[report.chance, report.chance], mode="lines", name="majority class",
                        line=dict(color="#9aa5b1", dash="dash", width=1))
    fig.update_xaxes(title_text="layer", type="category")
    fig.update_yaxes(title_text=metric)
    return fig


def probe_table(report) -> tuple[list[str], list[list]]:
    rows = report.rows()
    cols = ["layer", report.metric, "95% CI"] + (["control", "selectivity"] if "control" in rows[0] else []) \
        + (["shuffled"] if "shuffled" in rows[0] else []) + ["L2"]
    out = []
    for r in rows:
        cells = [r["layer"], f"{r[report.metric]:.3f}", f"{r['ci_low']:.3f} - {r['ci_high']:.3f}"]
        if "control" in r:
            cells += [f"{r['control']:.3f}", f"{r['selectivity']:+.3f}"]
        if "shuffled" in r:
            cells += [f"{r['shuffled']:.3f}"]
        out.append(cells + [f"{r['l2']:.3g}"])
    return cols, out


def add_probe(page: Page, report, data: str | None = None, title: str = "Linear probes") -> Section:
    """A section with the probe curve and its table."""
    what = f" '{data}'" if data else ""
    sec = page.section(title, f"A linear probe per layer on{what}: {report.n_train} training and {report.n_val} "
                              f"validation examples. Selectivity = accuracy - control-task accuracy; the shuffled "
                              "baseline trains on permuted labels.")
    best = report.layers.index(report.best_layer)
    sel = report.selectivity
    sec.text(f"Best layer {report.best_layer}: {report.metric} {report.score[best]:.3f} "
             f"(95% CI {report.ci_low[best]:.3f}-{report.ci_high[best]:.3f})"
             + (f", selectivity {sel[best]:+.3f}" if sel else "") + ".")
    sec.figure(probe_figure(report))
    cols, rows = probe_table(report)
    sec.table(cols, rows, "; ".join(report.notes) or None)
    return sec
