"""Report pieces for the logit lens (and the tuned lens beside it): a per-layer table, curves, a heat map.

Each function takes :class:`~shoestring.observe.lens.LensResult` objects; several lenses on the same prompt
(``{"logit lens": r1, "tuned lens": r2}``) are drawn side by side.
"""

from __future__ import annotations

from .page import Page, Section
from .style import COLOURS, heatmap, template


def lens_table(rows_by_lens: dict[str, list[dict]], k: int = 3) -> tuple[list[str], list[list]]:
    """Columns and rows of a per-layer table from ``LensResult.rows()`` of one or more lenses."""
    names = list(rows_by_lens)
    first = rows_by_lens[names[0]]
    has_target = "target_rank" in first[0]
    cols = ["layer"]
    for n in names:
        p = f"{n}: " if len(names) > 1 else ""
        cols += [f"{p}top tokens", *([f"{p}target p", f"{p}target rank"] if has_target else []),
                 f"{p}entropy", f"{p}KL to final"]
    out = []
    for i, row in enumerate(first):
        cells: list = [row["layer"]]
        for n in names:
            r = rows_by_lens[n][i]
            cells.append(", ".join(f"{t!r} {p:.2f}" for t, p in zip(r["top_tokens"][:k], r["top_probs"][:k])))
            if has_target:
                cells += [f"{r['target_prob']:.4f}", r["target_rank"]]
            cells += [f"{r['entropy']:.2f}", f"{r['kl_to_final']:.2f}"]
        out.append(cells)
    return cols, out


def lens_curves(rows_by_lens: dict[str, list[dict]], target: str | None = None):
    """Per layer: the target's probability and rank (or the top-1 probability without a target), and
    the KL to the final distribution; one line per lens."""
    from plotly.subplots import make_subplots

    first = next(iter(rows_by_lens.values()))
    has_target = "target_rank" in first[0]
    titles = ([f"P({target!r})" if target else "target probability", "target rank (0 = top)"] if has_target
              else ["top-1 probability"]) + ["KL(final || lens), nats"]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.08)
    fig.update_layout(template=template(), height=380, legend=dict(orientation="h", y=-0.25))
    for j, (name, rows) in enumerate(rows_by_lens.items()):
        layers = [r["layer"] for r in rows]
        col = COLOURS[j % len(COLOURS)]
        series = ([[r["target_prob"] for r in rows], [r["target_rank"] + 1 for r in rows]] if has_target
                  else [[r["top_probs"][0] for r in rows]]) + [[r["kl_to_final"] for r in rows]]
        hover = ["p %{y:.4f}", "rank %{customdata}", "KL %{y:.3f}"] if has_target else ["p %{y:.3f}", "KL %{y:.3f}"]
        for c, (ys, h) in enumerate(zip(series, hover), start=1):
            extra = dict(customdata=[r["target_rank"] for r in rows]) if has_target and c == 2 else {}
            fig.add_scatter(x=layers, y=ys, mode="lines+markers", name=name, legendgroup=name, showlegend=c == 1,
                            line=dict(color=col), hovertemplate=f"{name}, layer %{{x}}: {h}<extra></extra>",
                            row=1, col=c, **extra)
    if has_target:
        fig.update_yaxes(type="log", row=1, col=1)
        fig.update_yaxes(type="log", autorange="reversed", row=1, col=2)
    n_layers = len(first)
    for c in range(1, len(titles) + 1):
        fig.update_xaxes(title_text="layer", dtick=max(1, n_layers // 10), row=1, col=c)
    return fig


def lens_heatmap(rows_by_lens: dict[str, list[dict]], k: int = 3):
    """Layers (rows) x the top ``k`` tokens of each lens (columns, lenses side by side): each cell shows
    the token, coloured by its probability."""
    names = list(rows_by_lens)
    first = rows_by_lens[names[0]]
    k = min(k, *(len(rows[0]["top_tokens"]) for rows in rows_by_lens.values()))
    cols = [(n, j) for n in names for j in range(k)]
    x = [f"{n} #{j + 1}" if len(names) > 1 else f"#{j + 1}" for n, j in cols]
    z = [[rows_by_lens[n][i]["top_probs"][j] for n, j in cols] for i in range(len(first))]
    text = [[repr(rows_by_lens[n][i]["top_tokens"][j])[:16] for n, j in cols] for i in range(len(first))]
    return heatmap(z, x, [r["layer"] for r in first], f"top {k} tokens per layer", x_title="rank",
                   colorbar="p", text=text, hover="layer %{y}, %{x}: %{text} p=%{z:.3f}", zmin=0, zmax=1,
                   height=max(320, 60 + 20 * len(first)))


def _rows(result, k: int) -> list[dict]:
    """``result.rows(k)`` with the target's probability unrounded (rows() keeps 6 decimals, and a log axis
    needs the tiny early-layer values)."""
    rows = result.rows(max(k, 1))
    if result.target_id is not None:
        probs = result.logprobs[:, result.target_id].double().exp().tolist()
        rows = [{**r, "target_prob": p} for r, p in zip(rows, probs)]
    return rows


def add_lens(page: Page, result, tuned=None, *, prompt: str | None = None, target: str | None = None,
             k: int = 3, title: str = "Logit lens") -> Section:
    """A section with the lens curves, the top-token heat map and the per-layer table.

    Parameters
    ----------
    result
        The logit lens (:func:`~shoestring.observe.logit_lens`).
    tuned
        Optionally the same prompt through a tuned lens (``logit_lens(..., lens=TunedLens)``), shown beside it.
    """
    lenses = {"logit lens": _rows(result, k)}
    if tuned is not None:
        lenses["tuned lens"] = _rows(tuned, k)
    pos_tok = result.tokens[result.position] if result.tokens else ""
    intro = (f"Each layer's residual stream at position {result.position} ({pos_tok!r}) read through the final "
             f"norm and the unembedding" + (" (and, for the tuned lens, a learned translator first)" if tuned else "")
             + ". At the last layer the lens is the model's own distribution.")
    sec = page.section(title + (" vs tuned lens" if tuned is not None else ""), intro)
    if prompt is not None:
        sec.text(f"Prompt: {prompt!r}" + (f"; target {target!r}" if target else ""))
    sec.figure(lens_curves(lenses, target), "Per layer; lower KL = closer to the final prediction.")
    sec.figure(lens_heatmap(lenses, k))
    cols, rows = lens_table(lenses, k)
    sec.table(cols, rows)
    return sec
