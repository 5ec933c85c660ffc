"""Report pieces for direct logit attribution: each head's and MLP's direct contribution to a logit."""

from __future__ import annotations

from .page import Page, Section
from .style import COLOURS, figure, heatmap


def dla_figures(result) -> list:
    """A layer x head heat map of head contributions and a per-layer bar chart of the MLPs (and the
    attention biases), from a :class:`~shoestring.observe.DLAResult`."""
    heads = result.heads.float()
    n_layers, n_heads = heads.shape
    fig_heads = heatmap(heads, [f"H{h}" for h in range(n_heads)], list(range(n_layers)), "heads: direct contribution",
                        x_title="head", colorbar="logit", diverging=True, hover="layer %{y}, head %{x}: %{z:+.3f}",
                        height=max(300, 60 + 16 * n_layers))
    fig_mlp = figure(340, title=dict(text="per layer: MLP and attention-bias contributions"), barmode="group")
    layers = list(range(n_layers))
    fig_mlp.add_bar(x=layers, y=result.mlps.float().tolist(), name="MLP", marker_color=COLOURS[1])
    fig_mlp.add_bar(x=layers, y=result.attn_bias.float().tolist(), name="attention bias / rest", marker_color=COLOURS[5])
    fig_mlp.add_scatter(x=layers, y=heads.sum(1).tolist(), mode="lines+markers", name="all heads",
                        line=dict(color=COLOURS[0]))
    fig_mlp.update_xaxes(title_text="layer")
    fig_mlp.update_yaxes(title_text="logit contribution")
    return [fig_heads, fig_mlp]


def add_dla(page: Page, result, prompt: str | None = None, target: str | None = None, wrong: str | None = None,
            k: int = 10, title: str = "Direct logit attribution") -> Section:
    """A section with the contribution heat map, the per-layer bars and the largest parts."""
    what = f"logit({target!r})" + (f" - logit({wrong!r})" if wrong else "") if target else "the logit"
    sec = page.section(title, f"Each part's direct contribution to {what} at the last position, through the final "
                              "norm frozen at its actual scale: the parts sum to the model's value.")
    if prompt is not None:
        sec.text(f"Prompt: {prompt!r}. Logit {result.logit:.3f}; sum of parts {result.total():.3f} "
                 f"(embeddings {result.embed:+.3f}, constant {result.constant:+.3f}).")
    for fig in dla_figures(result):
        sec.figure(fig)
    sec.table(["part", "contribution"], [[r["part"], f"{r['contribution']:+.3f}"] for r in result.top(k)],
              f"The {k} largest parts by size.")
    return sec
