"""Report pieces for one neuron (or direction): what it writes into the vocabulary, where it fires
(top-activating contexts, highlighted token by token), and a histogram of its activations."""

from __future__ import annotations

from .highlight import highlight_tokens, legend
from .page import Page, Section, esc
from .style import COLOURS, figure


def histogram_figure(hist: dict, title: str = "activations over the corpus"):
    """Bars of ``top_activating(...)["histogram"]`` (counts over equal bins from min to max)."""
    counts, lo, hi = hist["counts"], hist["min"], hist["max"]
    width = (hi - lo) / max(len(counts), 1)
    centres = [lo + (i + 0.5) * width for i in range(len(counts))]
    fig = figure(300, title=dict(text=title), bargap=0.02)
    fig.add_bar(x=centres, y=counts, width=[width] * len(counts), marker_color=COLOURS[0],
                hovertemplate="%{x:.3f}: %{y} tokens<extra></extra>", name="tokens")
    fig.update_xaxes(title_text="activation")
    fig.update_yaxes(title_text="tokens")
    return fig


def contexts_html(top_rows: list[dict], vmax: float | None = None) -> str:
    """The top-activating contexts (rows of ``top_activating(...)["top"]`` with ``tokens`` and ``values``),
    one highlighted line each; the activating token is the last one and is underlined."""
    if vmax is None:
        vmax = max((abs(v) for r in top_rows for v in r.get("values", [r["value"]])), default=0.0)
    lines = []
    for r in top_rows:
        tokens = r.get("tokens") or [r["context"], r["token"]]
        values = r.get("values") or [float("nan"), r["value"]]
        lines.append(highlight_tokens(tokens, values, vmax=vmax, label=f"{r['value']:+.3f}", mark=len(tokens) - 1,
                                      newlines=False))
    return "".join(lines) + legend(vmax)


def add_neuron(page: Page, name: str, effect: dict | None = None, acts: dict | None = None, texts=None,
               corpus: str | None = None, title: str | None = None, intro: str | None = None) -> Section:
    """A section for one neuron.

    Parameters
    ----------
    name
        How to call it, e.g. ``"L20N100"``.
    effect
        :func:`~shoestring.observe.direct_logit_effect` (``promotes`` / ``suppresses``).
    acts
        :func:`~shoestring.observe.top_activating` (``top`` contexts, ``histogram``, ``mean``).
    texts
        Extra ``(label, tokens, values)`` lines to highlight (e.g. from ``token_activations``), sharing one scale.
    """
    sec = page.section(title or f"Neuron {name}", intro)
    if effect is not None:
        sec.table(["promotes (logit effect)", "suppresses"],
                  [[f"{a[0]!r} {a[1]:+.3f}", f"{b[0]!r} {b[1]:+.3f}"] for a, b in zip(effect["promotes"], effect["suppresses"])],
                  "Its output weight read through the final norm's gain and the unembedding (Geva et al. 2022).")
    if texts:
        vmax = max((abs(v) for _, _, vals in texts for v in vals), default=0.0)
        sec.html("".join(highlight_tokens(toks, vals, vmax=vmax, label=lab) for lab, toks, vals in texts) + legend(vmax))
    if acts is not None:
        where = f" in {esc(corpus)}" if corpus else ""
        sec.html(f"<h3>Where it fires most{where}</h3>")
        sec.html(contexts_html(acts["top"]))
        sec.figure(histogram_figure(acts["histogram"]),
                   f"Mean {acts['mean']:.3f}; {acts['fraction_positive']:.0%} of tokens > 0.")
    return sec
