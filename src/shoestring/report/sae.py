"""An SAE feature browser in one self-contained HTML file: an index of features with a search box, and a
page per feature (``#f123``) with its top contexts highlighted token by token, its activation histogram,
its density and the tokens it promotes and suppresses.

The index is plain HTML (it reads without JavaScript); the feature pages are drawn by a small script from
JSON embedded in the page (token windows and values are ~10x smaller as JSON than as highlighted HTML).
The page makes no request: the same Content-Security-Policy as every report page.

>>> stats = feature_stats(sae, store)                                                   # doctest: +SKIP
>>> feature_browser(sae, stats, store, tokenizer, lm=lm, out_path="features.html")      # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from ..sae.evaluate import density_histogram
from .page import Page, esc
from .style import COLOURS, figure

CSS = """
#sae-browser input[type=search] { font-size: 1em; padding: 4px 8px; width: 22em; margin: 0.5em 0.8em 0.5em 0; }
#sae-browser .muted { color: #616e7c; font-size: 0.9em; }
#sae-feature h3 { margin-top: 1.4em; }
"""

# Draws a feature page from the embedded JSON; the index rows are filtered in place. Token spans follow
# report/highlight.py: red with opacity |value| / vmax, a hover title, the top token underlined.
JS = r"""
(function () {
  const data = JSON.parse(document.getElementById('sae-data').textContent);
  const index = document.getElementById('sae-index'), view = document.getElementById('sae-feature');
  const box = document.getElementById('sae-search'), shown = document.getElementById('sae-shown');
  const rows = Array.from(document.querySelectorAll('#sae-table tbody tr'));
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(v) { return (v >= 0 ? '+' : '') + v.toFixed(3); }
  function colour(v, vmax) {
    if (!isFinite(v) || vmax <= 0) return 'transparent';
    const [r, g, b] = v >= 0 ? [214, 39, 40] : [31, 119, 180];
    return 'rgba(' + r + ', ' + g + ', ' + b + ', ' + (Math.min(1, Math.abs(v) / vmax) * 0.85).toFixed(3) + ')';
  }
  function filter() {
    const q = box.value.trim().toLowerCase();
    let n = 0;
    for (const r of rows) { const hit = !q || r.dataset.search.includes(q); r.hidden = !hit; n += hit ? 1 : 0; }
    shown.textContent = n + ' of ' + rows.length + ' features shown';
  }
  function table(head, body) {
    const t = el('table', {class: 'data'}), tr = el('tr');
    head.forEach(h => tr.appendChild(el('th', {}, h)));
    t.appendChild(el('thead')).appendChild(tr);
    const tb = t.appendChild(el('tbody'));
    body.forEach(row => { const r = tb.appendChild(el('tr')); row.forEach(c => r.appendChild(el('td', {}, c))); });
    return t;
  }
  function contexts(f) {
    const out = el('div'), vmax = Math.max(0, ...f.contexts.map(c => Math.max(...c.a.map(Math.abs))));
    for (const c of f.contexts) {
      const line = out.appendChild(el('div', {class: 'tokens'}));
      line.appendChild(el('span', {class: 'tok-label'}, num(c.v)));
      c.t.forEach((tok, i) => {
        const s = line.appendChild(el('span', {class: 'tok', title: JSON.stringify(tok) + ': ' + num(c.a[i])},
                                      tok.replace(/\r/g, '').replace(/\n/g, '\u23ce')));
        s.style.backgroundColor = colour(c.a[i], vmax);
        if (i === c.m) { s.style.textDecoration = 'underline'; s.style.fontWeight = 'bold'; }
      });
    }
    out.appendChild(el('p', {class: 'caption'}, 'Colour: the activation (full red = ' + num(vmax) +
                       '); the top token is underlined. Hover a token for its value.'));
    return out;
  }
  function show(id) {
    const f = data.features[id];
    view.appendChild(el('p')).appendChild(el('a', {href: '#', id: 'sae-back'}, '\u2190 all features'));
    view.appendChild(el('h3', {id: 'sae-title'}, 'Feature ' + id));
    if (!f) { view.appendChild(el('p', {}, 'Feature ' + id + ' is not in this page.')); return; }
    view.appendChild(table(['density', 'fired on', 'max', 'mean when firing'],
      [[f.density.toExponential(3), f.count + ' of ' + data.tokens + ' tokens', f.max.toFixed(4), f.mean.toFixed(4)]]));
    if (f.promotes) {
      view.appendChild(el('h3', {}, 'Promotes / suppresses (direct logit effect)'));
      view.appendChild(table(['promotes', 'suppresses'], f.promotes.map((p, i) =>
        [JSON.stringify(p[0]) + ' ' + num(p[1]), JSON.stringify(f.suppresses[i][0]) + ' ' + num(f.suppresses[i][1])])));
    }
    view.appendChild(el('h3', {}, 'Top contexts'));
    view.appendChild(f.contexts.length ? contexts(f) : el('p', {}, 'It never fired.'));
    view.appendChild(el('h3', {}, 'Activations when firing'));
    const chart = view.appendChild(el('div', {class: 'plotly-graph-div', id: 'sae-hist'}));
    const w = f.hist.upper / f.hist.counts.length;
    Plotly.newPlot(chart, [{type: 'bar', x: f.hist.counts.map((_, i) => (i + 0.5) * w), y: f.hist.counts,
      width: f.hist.counts.map(() => w), marker: {color: data.colour},
      hovertemplate: '%{x:.3f}: %{y} tokens<extra></extra>'}],
      {height: 300, bargap: 0.02, margin: {l: 60, r: 20, t: 30, b: 50}, font: {family: 'system-ui, sans-serif', size: 12},
       xaxis: {title: {text: 'activation'}}, yaxis: {title: {text: 'tokens'}}},
      {displaylogo: false, responsive: true});
  }
  function route() {
    const m = /^#f(\d+)$/.exec(location.hash);
    const old = document.getElementById('sae-hist');
    if (old) Plotly.purge(old);
    view.replaceChildren();
    index.hidden = !!m;
    view.hidden = !m;
    if (m) { show(m[1]); window.scrollTo(0, 0); }
  }
  box.addEventListener('input', filter);
  window.addEventListener('hashchange', route);
  filter();
  route();
})();
"""


def choose_latents(stats, latents=None, max_features: int = 300) -> list[int]:
    """The latents a browser shows: ``latents`` as given, else the ``max_features`` densest alive ones."""
    if latents is not None:
        chosen = [int(x) for x in latents]
        for lat in chosen:
            stats._check(lat)
        return chosen
    alive = torch.nonzero(stats.counts > 0).flatten()
    order = alive[stats.counts[alive].argsort(descending=True, stable=True)]
    return order[:max_features].tolist()


def _density_figure(stats):
    hist = density_histogram(stats.density)
    fig = figure(300, title=dict(text="feature density (log10 of the fraction of tokens fired on)"), bargap=0.02)
    edges = hist["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    fig.add_bar(x=centres, y=hist["counts"], marker_color=COLOURS[0], name="features",
                hovertemplate="log10 density %{x:.2f}: %{y} features<extra></extra>")
    fig.update_xaxes(title_text="log10 density")
    fig.update_yaxes(title_text="features")
    return fig, hist["dead"]


def feature_browser(sae, stats, store, tokenizer=None, lm=None, latents=None, out_path="feature_browser.html",
                    title: str = "SAE feature browser", max_features: int = 300, logits_k: int = 8) -> Path:
    """Write the feature browser of ``sae`` to ``out_path``; return the path.

    Parameters
    ----------
    sae, stats
        The SAE and its :func:`~shoestring.sae.features.feature_stats`.
    store
        The activation store the statistics were computed on (the contexts are read from it).
    tokenizer
        Decodes tokens (default: ``lm.tokenizer``; without either, token ids are shown).
    lm
        With a model, each feature lists the tokens it promotes and suppresses (residual-stream SAEs).
    latents
        The features to include; default the ``max_features`` most frequent alive ones (the page says how
        many were left out).
    """
    if tokenizer is None and lm is not None:
        tokenizer = lm.tokenizer
    chosen = choose_latents(stats, latents, max_features)
    ctx = stats.contexts_many(chosen, store, tokenizer, sae) if chosen else {}
    logits = {}
    if lm is not None and chosen and sae.W_dec.shape[1] == lm.anatomy.d_model:
        from ..sae.features import feature_logits

        logits = feature_logits(sae, lm, chosen, k=logits_k)
    features, rows = {}, []
    for lat in chosen:
        cs = ctx.get(lat, [])
        f = {"density": float(stats.density[lat]), "count": int(stats.counts[lat]), "max": float(stats.act_max[lat]),
             "mean": float(stats.mean_when_firing[lat]),
             "hist": {"upper": float(stats.hist_upper[lat]), "counts": stats.hist_counts[lat].tolist()},
             "contexts": [{"v": round(c["value"], 4), "t": c["tokens"], "a": [round(v, 4) for v in c["values"]],
                           "m": c["mark"]} for c in cs]}
        if lat in logits:
            f["promotes"], f["suppresses"] = logits[lat]["promotes"], logits[lat]["suppresses"]
        features[str(lat)] = f
        top = Counter(c["tokens"][c["mark"]] for c in cs).most_common(5)
        words = {t for c in cs for t in c["tokens"]} | {p[0] for p in f.get("promotes", [])}
        search = "\n".join([f"f{lat}", *sorted(words)]).lower()
        cells = [f'<a href="#f{lat}">f{lat}</a>', f"{f['density']:.3e}", f"{f['max']:.3f}",
                 esc(", ".join(f"{t!r}×{n}" for t, n in top))]
        if logits:
            cells.append(esc(", ".join(repr(p[0]) for p in f.get("promotes", [])[:3])))
        rows.append(f'<tr id="row-f{lat}" data-search="{esc(search)}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    n_alive, n_dead = int((stats.counts > 0).sum()), int((stats.counts == 0).sum())
    left_out = n_alive - sum(1 for lat in chosen if stats.counts[lat] > 0)
    head = ["feature", "density", "max", "top tokens"] + (["promotes"] if logits else [])
    page = Page(title, subtitle=f"{stats.hook} · {stats.d_sae:,} latents · {stats.tokens:,} tokens",
                meta={"model": stats.meta.get("model", "?"), "SAE": repr(sae)})
    sec = page.section("Features")
    fig, dead = _density_figure(stats)
    coverage = (f"Showing {len(chosen):,} features ({'as chosen' if latents is not None else 'the most frequent alive ones'}); "
                f"{left_out:,} alive features left out. {n_dead:,} dead latents never fired in {stats.tokens:,} tokens.")
    sec.html(f'<style>{CSS}</style><div id="sae-browser"><div id="sae-index">'
             f'<p id="sae-coverage">{esc(coverage)}</p>')
    sec.figure(fig, f"{dead:,} dead latents (not shown: log10 of 0 is -inf).")
    data = {"tokens": stats.tokens, "colour": COLOURS[0], "features": features}
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    sec.html('<input type="search" id="sae-search" placeholder="filter: token, promoted token or f123" '
             'aria-label="filter features"><span id="sae-shown" class="muted"></span>'
             '<table class="data" id="sae-table"><thead><tr>' + "".join(f"<th>{esc(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
             '<div id="sae-feature" hidden></div></div>'
             f'<script type="application/json" id="sae-data">{payload}</script><script>{JS}</script>')
    return page.save(out_path)
