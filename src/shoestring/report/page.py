"""One self-contained HTML page: sections of text, tables, token highlights and plotly figures.

plotly.js is inlined once in the page's ``<head>`` (``plotly.offline.get_plotlyjs()``), every figure is a
``<div>`` plus a ``Plotly.newPlot`` call, and a Content-Security-Policy forbids any network request: the
file opens from ``file://`` on a machine without internet, and a page that tried to reach a CDN would
fail loudly in the browser console rather than silently.

>>> page = Page("logit lens", subtitle="smollm2-135m")
>>> sec = page.section("Per layer", intro="What each layer would predict.")
>>> sec.table(["layer", "top token"], [[0, " the"], [1, " Paris"]])
>>> "<table" in page.render()
True
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# No request of any kind leaves the page: scripts and styles are inline, images are data: or blob: URLs
# (plotly draws heat maps through a canvas turned into an image).
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5em 3em; color: #1f2933; line-height: 1.45; }
header { border-bottom: 1px solid #d9e2ec; margin-bottom: 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #e4e7eb; }
.meta { color: #616e7c; font-size: 0.9em; }
nav ol { columns: 2; font-size: 0.95em; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
table.data th, table.data td { border: 1px solid #d9e2ec; padding: 2px 8px; text-align: left; vertical-align: top; }
table.data th { background: #f0f4f8; }
.caption { color: #52606d; font-size: 0.9em; margin: 0.2em 0 1.2em; }
.figure { margin: 0.5em 0 0.2em; }
.tokens { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; white-space: pre-wrap; line-height: 1.9;
          font-size: 0.9em; margin: 0.3em 0; }
.tok, .swatch { border-radius: 3px; padding: 1px 0; }
.tok-label { color: #52606d; font-family: system-ui, sans-serif; margin-right: 0.6em; }
"""


def esc(text) -> str:
    """HTML-escape ``text`` (quotes included, so it is safe inside attributes too)."""
    return html.escape(str(text), quote=True)


def slug(text: str) -> str:
    """An HTML id from a heading: lower case, ``[a-z0-9-]`` only."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "section"


def table_html(columns, rows, caption: str | None = None) -> str:
    """An HTML table of escaped cells; floats print with 4 significant digits."""
    def cell(v) -> str:
        return esc(f"{v:.4g}" if isinstance(v, float) else v)

    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{cap}'


@dataclass
class Section:
    """A titled part of a page; its blocks render in the order they were added."""

    title: str
    intro: str | None = None
    blocks: list = field(default_factory=list)  # HTML strings, or (figure, caption) pairs

    @property
    def id(self) -> str:
        return slug(self.title)

    def text(self, paragraph: str) -> Section:
        """A paragraph of plain text (escaped)."""
        self.blocks.append(f"<p>{esc(paragraph)}</p>")
        return self

    def html(self, raw: str) -> Section:
        """Raw HTML, as it is: build it with :func:`esc` or the highlight helpers."""
        self.blocks.append(raw)
        return self

    def table(self, columns, rows, caption: str | None = None) -> Section:
        self.blocks.append(table_html(columns, rows, caption))
        return self

    def figure(self, fig, caption: str | None = None) -> Section:
        """A plotly figure (a ``plotly.graph_objects.Figure``), with an optional caption below it."""
        self.blocks.append((fig, caption))
        return self

    @property
    def n_figures(self) -> int:
        return sum(isinstance(b, tuple) for b in self.blocks)


@dataclass
class Page:
    """A report page. Add sections, then :meth:`render` (a string) or :meth:`save` (atomically).

    Parameters
    ----------
    title
        The ``<h1>`` and the window title.
    subtitle
        One line under the title (model, prompt, ...).
    meta
        Extra facts for the header line (``{"model": "smollm2-135m"}``); the date and the shoestring
        version are always added.
    """

    title: str
    subtitle: str | None = None
    meta: dict = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, intro: str | None = None) -> Section:
        sec = Section(title, intro)
        self.sections.append(sec)
        return sec

    @property
    def n_figures(self) -> int:
        return sum(s.n_figures for s in self.sections)

    def render(self) -> str:
        """The whole page as one HTML string (plotly.js inlined once, only when there is a figure)."""
        from .. import __version__

        facts = {**self.meta, "shoestring": __version__,
                 "written": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        meta = " &middot; ".join(f"{esc(k)}: {esc(v)}" for k, v in facts.items())
        ids = _unique_ids([s.id for s in self.sections])
        nav = "".join(f'<li><a href="#{i}">{esc(s.title)}</a></li>' for i, s in zip(ids, self.sections))
        parts, n_fig = [], 0
        for sid, sec in zip(ids, self.sections):
            parts.append(f'<section id="{sid}"><h2>{esc(sec.title)}</h2>')
            if sec.intro:
                parts.append(f'<p class="intro">{esc(sec.intro)}</p>')
            for block in sec.blocks:
                if isinstance(block, tuple):
                    n_fig += 1
                    parts.append(_figure_html(block[0], f"fig-{n_fig}", block[1]))
                else:
                    parts.append(block)
            parts.append("</section>")
        plotly_js = f"<script>{_plotly_js()}</script>" if n_fig else ""
        sub = f'<p class="subtitle">{esc(self.subtitle)}</p>' if self.subtitle else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{esc(self.title)}</title><style>{CSS}</style>{plotly_js}</head>\n<body>"
                f'<header><h1>{esc(self.title)}</h1>{sub}<p class="meta">{meta}</p>'
                + (f"<nav><ol>{nav}</ol></nav>" if len(self.sections) > 1 else "")
                + "</header>\n" + "\n".join(parts) + "\n</body></html>\n")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` atomically (a reader never sees half a page); return the path."""
        from ..runs.atomic import write_text

        return write_text(path, self.render())


def _unique_ids(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}-{seen[i]}")
    return out


def _figure_html(fig, div_id: str, caption: str | None) -> str:
    import plotly.io as pio

    height = fig.layout.height or 420
    body = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, default_height=f"{height}px",
                       config={"displaylogo": False, "responsive": True})
    cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    return f'<div class="figure">{body}</div>{cap}'


_PLOTLY_JS: str | None = None


def _plotly_js() -> str:
    global _PLOTLY_JS
    if _PLOTLY_JS is None:
        from plotly.offline import get_plotlyjs

        _PLOTLY_JS = get_plotlyjs()
    return _PLOTLY_JS
