"""Report pieces for activation geometry: the PCA map coloured by label, with k-means and silhouettes."""

from __future__ import annotations

from .page import Page, Section
from .style import COLOURS, figure

SYMBOLS = ["circle", "x", "diamond", "square", "triangle-up", "cross", "star", "hexagon"]


def pca_figure(summary: dict, label_names: dict | None = None, texts=None, title: str = "PCA of activations"):
    """PC1 x PC2 scatter from :func:`~shoestring.observe.geometry.geometry_summary`: colour = label,
    marker = k-means cluster, hover = the example's text."""
    label_names = label_names or {}
    pts = summary["map"]
    clusters = summary.get("clusters") or [0] * len(pts)
    ev = summary["explained_variance"]
    fig = figure(460, title=dict(text=title), legend=dict(title=dict(text="label (marker: k-means cluster)")))
    for j, lab in enumerate(sorted({p[2] for p in pts})):
        idx = [i for i, p in enumerate(pts) if p[2] == lab]
        hover = [(texts[i] if texts is not None else f"example {i}")[:80] for i in idx]
        fig.add_scatter(x=[pts[i][0] for i in idx], y=[pts[i][1] for i in idx], mode="markers",
                        name=str(label_names.get(lab, lab)), text=hover,
                        customdata=[clusters[i] for i in idx],
                        marker=dict(color=COLOURS[j % len(COLOURS)], size=8, opacity=0.8,
                                    symbol=[SYMBOLS[clusters[i] % len(SYMBOLS)] for i in idx]),
                        hovertemplate="%{text}<br>PC1 %{x:.2f}, PC2 %{y:.2f}, cluster %{customdata}<extra></extra>")
    fig.update_xaxes(title_text=f"PC1 ({ev[0]:.1%} of variance)")
    fig.update_yaxes(title_text=f"PC2 ({ev[1]:.1%} of variance)" if len(ev) > 1 else "PC2")
    return fig


def summary_rows(summary: dict) -> list[list]:
    rows = [["examples", summary["n"]],
            ["variance explained by PC1 + PC2", f"{sum(summary['explained_variance']):.1%}"],
            ["k-means silhouette", f"{summary['kmeans_silhouette']:.3f}"],
            ["silhouette of the true labels", f"{summary['label_silhouette']:.3f}"],
            ["PC1 vs label correlation", f"{summary['pc1_label_correlation']:+.3f}"]]
    if summary.get("kmeans_label_agreement") is not None:
        rows.append(["k-means clusters match the labels", f"{summary['kmeans_label_agreement']:.1%}"])
    return rows


def add_geometry(page: Page, summary: dict, layer=None, data: str | None = None, label_names: dict | None = None,
                 texts=None, title: str = "Geometry") -> Section:
    """A section with the PCA map and the cluster / silhouette numbers."""
    where = f" at layer {layer}" if layer is not None else ""
    sec = page.section(title, f"Last-token activations{where}" + (f" for '{data}'" if data else "")
                       + ", projected on their first two principal components; k-means with silhouette "
                       "(1 = tight, well-separated clusters, 0 = overlapping).")
    sec.figure(pca_figure(summary, label_names, texts, title=f"PCA map{where}"))
    sec.table(["measure", "value"], summary_rows(summary))
    return sec
