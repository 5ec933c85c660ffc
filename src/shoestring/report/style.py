"""Shared looks for the report's figures: a small template, colour scales, a heat-map helper.

A plotly figure carries its template inside its JSON; the default one is ~8 KB per figure, so the report
uses a small one of its own.
"""

from __future__ import annotations

SEQUENTIAL = "Viridis"
DIVERGING = "RdBu"  # reversed below so that positive is red, negative blue (as in the token highlights)
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def template():
    import plotly.graph_objects as go

    return go.layout.Template(layout=dict(
        font=dict(family="system-ui, sans-serif", size=12, color="#1f2933"),
        paper_bgcolor="white", plot_bgcolor="white", colorway=COLOURS, hovermode="closest",
        margin=dict(l=60, r=20, t=50, b=50),
        xaxis=dict(showgrid=True, gridcolor="#e4e7eb", zeroline=False, automargin=True),
        yaxis=dict(showgrid=True, gridcolor="#e4e7eb", zeroline=False, automargin=True),
    ))


def figure(height: int = 420, **layout):
    """An empty figure with the report's template and ``height`` pixels."""
    import plotly.graph_objects as go

    return go.Figure(layout=dict(template=template(), height=height, **layout))


def heatmap(z, x, y, title: str, *, x_title: str = "", y_title: str = "layer", colorbar: str = "",
            diverging: bool = False, text=None, hover: str = "%{y}, %{x}: %{z:.3f}", height: int | None = None,
            zmin=None, zmax=None):
    """A heat map figure; ``z`` is ``[len(y), len(x)]`` (rows are ``y``), layers grow upwards.

    ``diverging`` centres the colour scale at 0 (red positive, blue negative). ``text`` prints in the
    cells (e.g. the top token of a lens).
    """
    import plotly.graph_objects as go

    z = [[None if v != v else float(v) for v in row] for row in _rows(z)]  # NaN -> gap
    if diverging and zmax is None:
        m = max((abs(v) for row in z for v in row if v is not None), default=1.0) or 1.0
        zmin, zmax = -m, m
    elif zmin is not None and zmax is None:  # plotly keeps auto-scaling unless both ends are given
        zmax = max((v for row in z for v in row if v is not None), default=zmin + 1.0)
    trace = go.Heatmap(z=z, x=list(x), y=list(y), colorscale=DIVERGING if diverging else SEQUENTIAL,
                       reversescale=diverging, zmin=zmin, zmax=zmax, hovertemplate=hover + "<extra></extra>",
                       colorbar=dict(title=dict(text=colorbar)), xgap=1, ygap=1)
    if text is not None:
        trace.update(text=text, texttemplate="%{text}", textfont=dict(size=10))
    rows = len(z)
    fig = figure(height or max(260, min(900, 60 + 22 * rows)), title=dict(text=title))
    fig.add_trace(trace)
    fig.update_xaxes(title_text=x_title, type="category", showgrid=False)
    fig.update_yaxes(title_text=y_title, type="category", showgrid=False)
    return fig


def _rows(z):
    if hasattr(z, "tolist"):
        z = z.tolist()
    return [list(r) for r in z]
