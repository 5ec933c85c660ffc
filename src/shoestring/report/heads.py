"""Report pieces for attention heads: one layer x head heat map per census score, one head's pattern."""

from __future__ import annotations

from .page import Page, Section
from .style import SEQUENTIAL, heatmap, template

SCORE_NOTES = {
    "induction": "attention from a repeated token to the token after its earlier copy",
    "previous_token": "attention to the previous token",
    "duplicate_token": "attention to the earlier copy of the same token",
    "sink": "attention to the first token (an attention sink)",
    "local": "attention within the last few tokens",
}


def token_labels(tokens) -> list[str]:
    """``"i:token"`` labels: unique even when a token repeats (a categorical axis merges equal labels)."""
    return [f"{i}:{t!r}"[: 24] for i, t in enumerate(tokens)]


def head_heatmaps(census, scores=None):
    """One layer x head heat map per census score, side by side in one figure on a shared 0-1 colour
    scale (every score is a mean attention weight); ``census``: :class:`~shoestring.observe.HeadScores`."""
    from plotly.subplots import make_subplots

    names = list(scores or census.scores)
    n_layers, n_heads = next(iter(census.scores.values())).shape
    fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[n.replace("_", " ") for n in names])
    for c, name in enumerate(names, start=1):
        s = census.scores[name].float()  # [n_layers, n_heads]
        fig.add_heatmap(z=s.tolist(), x=[f"H{h}" for h in range(n_heads)], y=list(range(n_layers)),
                        coloraxis="coloraxis", xgap=1, ygap=1, name=name,
                        hovertemplate=f"{name}: layer %{{y}}, head %{{x}}: %{{z:.3f}}<extra></extra>", row=1, col=c)
        fig.update_xaxes(type="category", showgrid=False, tickfont=dict(size=9), row=1, col=c)
    fig.update_yaxes(type="category", showgrid=False, title_text="layer", row=1, col=1)
    fig.update_layout(template=template(), height=max(320, 110 + 16 * n_layers),
                      coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title=dict(text="score"))))
    return fig


def pattern_heatmap(tokens, pattern, layer: int, head: int):
    """One head's attention ``pattern [query, key]``; queries run top to bottom."""
    labels = token_labels(tokens)
    fig = heatmap(pattern, labels, labels, f"L{layer}H{head} attention pattern", x_title="key (attended to)",
                  y_title="query", colorbar="weight", zmin=0, zmax=1,
                  hover="query %{y} -> key %{x}: %{z:.3f}", height=max(340, 120 + 22 * len(labels)))
    fig.update_yaxes(autorange="reversed")
    return fig


def add_heads(page: Page, census, k: int = 5, scores=None, title: str = "Attention-head census") -> Section:
    """A section with the top ``k`` heads of each score (a table) and one heat map per score."""
    names = scores or list(census.scores)
    sec = page.section(title, f"Every head scored on {census.batch} sequences of {census.seq_len} random tokens "
                              "repeated twice (Olsson et al. 2022): the mean attention weight on each score's target.")
    rows = []
    for name in names:
        top = census.top(name, k)
        rows.append([name, SCORE_NOTES.get(name, ""),
                     ", ".join(f"L{r['layer']}H{r['head']} ({r['score']:.2f})" for r in top)])
    sec.table(["score", "what it measures", f"strongest {k} heads"], rows)
    sec.figure(head_heatmaps(census, names), "One heat map per score; layers grow upwards.")
    return sec


def add_pattern(page: Page, tokens, pattern, layer: int, head: int, prompt: str | None = None,
                title: str | None = None) -> Section:
    """A section with one head's attention pattern on a prompt."""
    sec = page.section(title or f"Attention pattern of L{layer}H{head}",
                       "Row = the query token, column = the key it attends to; each row sums to 1.")
    if prompt is not None:
        sec.text(f"Prompt: {prompt!r}")
    sec.figure(pattern_heatmap(tokens, pattern, layer, head))
    return sec
