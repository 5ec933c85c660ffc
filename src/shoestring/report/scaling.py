"""The compute-equivalent-gain report: one page from the result dict of ``shoestring scaling run``
(:func:`shoestring.scaling.analysis.analyse`).

What it shows, in order: the summary table in the layout of "LLM-e Guess" (arXiv 2505.04075) with both
estimators beside the paper's numbers, loss against compute with the fitted power laws, ``CEG(C)`` with its 95%
band, the evaluation curves of the largest budget that the paper's read-off uses, loss against wall-clock
seconds, and the setup (configuration, FLOPs per token and parameters per variant).

A one-seed result has no fits and no intervals: the page says so and shows what it has.

>>> page = scaling_page(json.load(open("runs/scaling/result.json")), meta={"run": "scaling-0001"})  # doctest: +SKIP
>>> page.save("runs/scaling/report.html")                                                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from .page import Page, esc
from .style import COLOURS, figure

BASE_COLOUR = "#3e4c59"

METHODS = ("Two estimators of how much more compute the baseline needs to reach a variant's loss. Fitted: every "
           "variant's final held-out loss at each budget is fitted with L(C) = E + A C^-alpha (E shared with the "
           "baseline), and CEG(C) = C_baseline(L_variant(C)) / C; its interval resamples the seeds (bootstrap, 95%), "
           "and the slope of log CEG on log C says whether the gain is flat in compute (the interval holds 0) or "
           "rising / falling. Time-CEG is the same fit with wall-clock training seconds as the compute axis. "
           "Read-off (the paper's method): on the largest budget's run of each seed, the baseline's final compute "
           "over the compute (or step) at which the variant's evaluation curve first reaches the baseline's final "
           "loss; mean and range over the seeds that reach it. Fused attention computes the same function with the "
           "same FLOPs as explicit attention, so its FLOP-CEG is 1 by construction: its only possible gain is "
           "time-CEG. Agrees: our direction (gain when the interval lies above 1, loss below 1) against the "
           "paper's (gain above 1.1, loss when it never reached the baseline's loss).")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _g(v, fmt: str = ".3g") -> str:
    return format(v, fmt) if _finite(v) else "\u2014"


def _ci(x, lo, hi, fmt: str = ".3g") -> str:
    """``x [lo, hi]``; only ``x`` without an interval; a dash without ``x``."""
    if not _finite(x):
        return "\u2014"
    return f"{x:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" if _finite(lo) and _finite(hi) else f"{x:{fmt}}"


def sci(x) -> str:
    """``2.83e12`` for FLOPs; a dash for None."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{x:.3g}") if _finite(x) else "\u2014"


def _colour(result: dict, variant: str) -> str:
    if variant == result.get("baseline"):
        return BASE_COLOUR
    others = [v for v in result.get("variants") or [] if v != result.get("baseline")]
    return COLOURS[others.index(variant) % len(COLOURS)] if variant in others else COLOURS[-1]


def _points(result: dict, variant: str) -> list[dict]:
    return [p for p in result.get("points") or [] if p.get("variant") == variant]


def _has_intervals(result: dict) -> bool:
    return bool(result.get("ceg_mid"))


# --------------------------------------------------------------------------------------------- summary

def summary_rows(result: dict) -> list[dict]:
    """One dict of formatted cells per variant of the result's table (the columns of :func:`summary_table`)."""
    rows = []
    for r in result.get("table") or []:
        v = r["variant"]
        ro = (result.get("readoff") or {}).get(v, {})
        fl, st = ro.get("flops") or {}, ro.get("steps") or {}

        def readoff(s, mean):
            if not _finite(mean):
                return "never reached"
            return f"{mean:.3g} ({s['min']:.3g}\u2013{s['max']:.3g})" if s.get("reached", 0) > 1 else f"{mean:.3g}"

        paper = r.get("paper_note") or (f"{r['paper']:.2f}" if _finite(r.get("paper")) else "\u2014")
        agrees = r.get("agrees")
        tc = (result.get("time_ceg") or {}).get(v, {})
        rows.append({
            "variant": v,
            "ceg": _ci(r.get("ceg"), r.get("low"), r.get("high")),
            "direction": r.get("direction") or "",
            "slope": (_ci(r.get("slope"), r.get("slope_low"), r.get("slope_high"), ".3f") + " "
                      + (r.get("scaling") or "")).strip(),
            "time": _ci(r.get("time_ceg"), r.get("time_low"), r.get("time_high"))
                    + (f" at {tc['at_seconds']:.3g} s" if _finite(tc.get("at_seconds")) else ""),
            "readoff_flops": readoff(fl, r.get("readoff_flops")),
            "readoff_steps": readoff(st, r.get("readoff_steps")),
            "reached": r.get("readoff_reached") or f"{fl.get('reached', 0)}/{fl.get('of', 0)}",
            "paper": paper,
            "agrees": "\u2014" if agrees is None else ("yes" if agrees else "no"),
            "why": (f"ours: {r.get('direction')}; paper: {r.get('paper_direction')}"
                    if agrees is not None else ""),
        })
    return rows


def summary_table(result: dict) -> str:
    mid = result.get("mid")
    head = ["variant", f"CEG at {sci(mid)} FLOPs [95%]", "CEG(C) slope [95%], scaling", "time-CEG [95%]",
            "read-off CEG, FLOPs (range)", "read-off CEG, steps (range)", "reached (seeds)", "paper", "agrees"]
    body = []
    for r in summary_rows(result):
        tint = {"yes": "#e3f9e5", "no": "#ffe3e3"}.get(r["agrees"], "")
        style = f' style="background:{tint}"' if tint else ""
        why = f"<br><small>{esc(r['why'])}</small>" if r["why"] else ""
        agrees = f'<td class="agrees"{style}>{esc(r["agrees"])}{why}</td>'
        ceg = esc(r["ceg"]) + (f"<br><small>{esc(r['direction'])}</small>" if r["direction"] else "")
        cells = [esc(r["variant"]), ceg] + [esc(r[k]) for k in ("slope", "time", "readoff_flops", "readoff_steps",
                                                                 "reached", "paper")]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + agrees + "</tr>")
    return ('<table class="data scaling-summary"><thead><tr>' + "".join(f"<th>{esc(h)}</th>" for h in head)
            + f'</tr></thead><tbody>{"".join(body)}</tbody></table><p class="caption">{esc(METHODS)}</p>')


# --------------------------------------------------------------------------------------------- figures

def loss_compute_figure(result: dict):
    """Final held-out loss against training FLOPs (log x): the seed points per variant and, where fitted, the
    power law ``E + A C^-alpha`` over the budget range."""
    fig = figure(height=420, title=dict(text="Held-out loss vs training compute"))
    fits = result.get("fits") or {}
    flops = [p["flops"] for p in result.get("points") or [] if _finite(p.get("flops"))]
    for v in result.get("variants") or []:
        pts = [p for p in _points(result, v) if _finite(p.get("flops")) and _finite(p.get("val_loss"))]
        c = _colour(result, v)
        fig.add_scatter(x=[p["flops"] for p in pts], y=[p["val_loss"] for p in pts], mode="markers", name=v,
                        legendgroup=v, marker=dict(color=c, size=7, opacity=0.75),
                        customdata=[[p.get("seed"), sci(p.get("budget"))] for p in pts],
                        hovertemplate=f"{esc(v)}, seed %{{customdata[0]}}, budget %{{customdata[1]}}: "
                                      "%{x:.3g} FLOPs, loss %{y:.4f}<extra></extra>")
        f = fits.get(v)
        if f and flops:
            C = np.geomspace(min(flops), max(flops), 60)
            L = f["E"] + f["A"] * C ** -f["alpha"]
            fig.add_scatter(x=C.tolist(), y=L.tolist(), mode="lines", name=f"{v} fit", legendgroup=v, showlegend=False,
                            line=dict(color=c, width=1.5),
                            hovertemplate=f"{esc(v)} fit: E={f['E']:.3f}, A={f['A']:.3g}, alpha={f['alpha']:.3f}"
                                          "<extra></extra>")
    fig.update_xaxes(title_text="training compute (FLOPs)", type="log", **_budget_ticks(result))
    fig.update_yaxes(title_text="final held-out loss (nats / token)")
    return fig


def ceg_figure(result: dict):
    """``CEG(C)`` per variant with its 95% band (log x and y), a dashed line at 1, and the read-off (FLOPs) at
    the largest budget as a diamond with its range over seeds."""
    fig = figure(height=420, title=dict(text="CEG(C): the baseline's compute for the variant's loss, over C (95% band)"))
    at = result.get("at") or []
    top = max(result.get("budgets") or [0]) or None
    for v, cg in (result.get("ceg") or {}).items():
        c = _colour(result, v)
        ok = [i for i in range(len(at)) if _finite(cg["ceg"][i]) and _finite(cg["low"][i]) and _finite(cg["high"][i])]
        x = [at[i] for i in ok]
        if x:
            hi, lo = [cg["high"][i] for i in ok], [cg["low"][i] for i in ok]
            fig.add_scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", mode="lines", line=dict(width=0),
                            fillcolor=_rgba(c, 0.15), legendgroup=v, showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=at, y=[y if _finite(y) else None for y in cg["ceg"]], mode="lines", name=v, legendgroup=v,
                        line=dict(color=c, width=2), hovertemplate=f"{esc(v)}: CEG %{{y:.3g}} at %{{x:.3g}} FLOPs"
                                                                   "<extra></extra>")
        ro = ((result.get("readoff") or {}).get(v) or {}).get("flops") or {}
        if top and _finite(ro.get("mean")):
            fig.add_scatter(x=[top], y=[ro["mean"]], mode="markers", name=f"{v} read-off", legendgroup=v,
                            marker=dict(color=c, size=10, symbol="diamond-open"),
                            error_y=dict(type="data", symmetric=False, array=[ro["max"] - ro["mean"]],
                                         arrayminus=[ro["mean"] - ro["min"]], color=c),
                            hovertemplate=f"{esc(v)} read-off: %{{y:.3g}}<extra></extra>")
    # on a log axis an annotation's position is in log10 units: add it by hand, not through add_hline
    fig.add_hline(y=1, line_dash="dash", line_color=BASE_COLOUR, line_width=1.5)
    fig.add_annotation(x=0, xref="x domain", y=0, yref="y", text="1: no change", showarrow=False, xanchor="left",
                       yanchor="top")
    fig.update_xaxes(title_text="training compute C (FLOPs)", type="log", **_budget_ticks(result))
    fig.update_yaxes(title_text="CEG (x compute)", type="log")
    return fig


def _budget_ticks(result: dict) -> dict:
    b = sorted(result.get("budgets") or [])
    return dict(tickvals=b, ticktext=[sci(x) for x in b]) if b else {}


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def curves_figure(result: dict):
    """Held-out loss against FLOPs along each evaluation curve of the largest budget: each seed faint, the
    seed mean bold; a dotted line at the baseline's final loss (mean over seeds), the read-off's target."""
    top = max(result.get("budgets") or [0])
    fig = figure(height=420, title=dict(text=f"Evaluation curves at the largest budget ({sci(top)} FLOPs)"))
    targets = []
    for v in result.get("variants") or []:
        c = _colour(result, v)
        runs = [p for p in _points(result, v) if _finite(p.get("budget")) and math.isclose(p["budget"], top)
                and p.get("curve")]
        for p in runs:
            fig.add_scatter(x=[r["flops"] for r in p["curve"]], y=[r.get("val_loss") for r in p["curve"]],
                            mode="lines", legendgroup=v, showlegend=False, line=dict(color=c, width=1), opacity=0.35,
                            hovertemplate=f"{esc(v)}, seed {esc(p.get('seed'))}: %{{x:.3g}} FLOPs, loss %{{y:.4f}}"
                                          "<extra></extra>")
        n = min((len(p["curve"]) for p in runs), default=0)
        if n:
            fig.add_scatter(x=_seed_mean(runs, "flops", n), y=_seed_mean(runs, "val_loss", n), mode="lines+markers", name=v, legendgroup=v,
                            line=dict(color=c, width=2.5), marker=dict(color=c, size=6),
                            hovertemplate=f"{esc(v)} (seed mean): %{{x:.3g}} FLOPs, loss %{{y:.4f}}<extra></extra>")
            if v == result.get("baseline"):
                targets = [p["curve"][-1]["val_loss"] for p in runs]
    if targets:
        fig.add_hline(y=float(np.mean(targets)), line_dash="dot", line_color=BASE_COLOUR,
                      annotation_text="baseline's final loss", annotation_position="top right")
    fig.update_xaxes(title_text="training compute so far (FLOPs)", type="log")
    fig.update_yaxes(title_text="held-out loss (nats / token)")
    return fig


def _seed_mean(runs: list[dict], key: str, n: int) -> list:
    vals = [[p["curve"][i].get(key) for p in runs] for i in range(n)]
    return [float(np.mean([x for x in v if _finite(x)])) if any(_finite(x) for x in v) else None for v in vals]


def time_figure(result: dict):
    """Final held-out loss against wall-clock training seconds (log x): seed points and the mean per budget;
    a dotted line where time-CEG is read."""
    fig = figure(height=420, title=dict(text="Held-out loss vs wall-clock training time"))
    for v in result.get("variants") or []:
        c = _colour(result, v)
        pts = [p for p in _points(result, v) if _finite(p.get("seconds")) and _finite(p.get("val_loss"))]
        fig.add_scatter(x=[p["seconds"] for p in pts], y=[p["val_loss"] for p in pts], mode="markers",
                        legendgroup=v, showlegend=False, marker=dict(color=c, size=6, opacity=0.45),
                        customdata=[[p.get("seed"), sci(p.get("budget"))] for p in pts],
                        hovertemplate=f"{esc(v)}, seed %{{customdata[0]}}, budget %{{customdata[1]}}: "
                                      "%{x:.3g} s, loss %{y:.4f}<extra></extra>")
        budgets = sorted({p["budget"] for p in pts})
        per = [[p for p in pts if p["budget"] == b] for b in budgets]
        fig.add_scatter(x=[float(np.mean([p["seconds"] for p in g])) for g in per],
                        y=[float(np.mean([p["val_loss"] for p in g])) for g in per], mode="lines+markers", name=v,
                        legendgroup=v, line=dict(color=c, width=2), marker=dict(color=c, size=7),
                        hovertemplate=f"{esc(v)} (seed mean): %{{x:.3g}} s, loss %{{y:.4f}}<extra></extra>")
    where = {t.get("at_seconds") for t in (result.get("time_ceg") or {}).values() if _finite(t.get("at_seconds"))}
    for s in sorted(where):
        fig.add_vline(x=s, line_dash="dot", line_color="#9aa5b1")
        fig.add_annotation(x=math.log10(s), y=1, yref="y domain", text=f"time-CEG read at {s:.3g} s",
                           showarrow=False, xanchor="left", yanchor="top")
    fig.update_xaxes(title_text="wall-clock training time (s)", type="log")
    fig.update_yaxes(title_text="final held-out loss (nats / token)")
    return fig


# ------------------------------------------------------------------------------------------------ page

def _setup(sec, result: dict) -> None:
    meta = result.get("meta") or {}
    c = meta.get("config") or {}
    compact = lambda d: ", ".join(f"{k}={v}" for k, v in d.items()) if isinstance(d, dict) and d else "none"  # noqa: E731
    rows = [["corpus", c.get("corpus", "n/a")], ["tokenizer", c.get("tokenizer", "n/a")],
            ["vocabulary", c.get("vocab_size", "n/a")], ["characters used", c.get("max_chars") or "all"],
            ["shape", compact(c.get("shape"))], ["toggles on every variant", compact(c.get("overrides"))],
            ["training", compact(c.get("train"))],
            ["variants", ", ".join(map(str, result.get("variants") or []))], ["baseline", result.get("baseline")],
            ["budgets (FLOPs)", ", ".join(sci(b) for b in result.get("budgets") or [])],
            ["seeds", ", ".join(map(str, result.get("seeds") or []))]]
    sec.table(["", "this grid"], rows, "The baseline follows the paper: GPT-2 without block LayerNorm, learned "
                                       "positions, explicit attention; each variant changes one idea.")
    fpt = meta.get("flops_per_token") or {}
    vrows = []
    for v in result.get("variants") or []:
        pts = _points(result, v)
        top = max(pts, key=lambda p: p.get("budget") or 0, default={})
        vrows.append([v, sci(fpt.get(v, top.get("flops_per_token"))), f"{top['params']:,}" if "params" in top else "n/a",
                      f"{top['steps']:,}" if "steps" in top else "n/a", f"{top['tokens']:,}" if "tokens" in top else "n/a"])
    sec.table(["variant", "training FLOPs / token", "parameters", "steps at the largest budget",
               "tokens at the largest budget"], vrows,
              "A budget is a number of training FLOPs: a variant that costs more per token trains on fewer tokens.")
    if c:
        sec.html("<details><summary>The grid configuration</summary><pre>"
                 f"{esc(json.dumps(c, indent=1, sort_keys=True, default=str))}</pre></details>")


def scaling_page(result: dict, title: str = "Compute-equivalent gain", meta: dict | None = None) -> Page:
    """The whole report of one scaling grid: sections Summary, Loss vs compute, CEG vs compute, Training curves,
    Loss vs wall-clock time, Setup."""
    seeds, budgets = result.get("seeds") or [], result.get("budgets") or []
    variants = result.get("variants") or []
    page = Page(title, subtitle=f"{len(variants) - 1} variant(s) against {result.get('baseline')} \u00b7 "
                                f"{len(budgets)} budgets \u00b7 {len(seeds)} seed(s)",
                meta={"baseline": result.get("baseline", "n/a"), **(meta or {})})
    intervals = _has_intervals(result)
    sec = page.section("Summary", "Compute-equivalent gain (CEG) of each variant over the baseline: how many times "
                                  "the baseline's compute it would take to reach the variant's loss (above 1: the "
                                  "idea helps), in the layout of the paper's table.")
    if not intervals:
        why = result.get("note") or "no intervals: the fits and their bootstrap need at least 2 seeds"
        sec.html('<div class="scaling-note" style="border-left:5px solid #d64545;background:#fff5f5;padding:0.5em '
                 f'0.9em;margin:0.6em 0;"><b>{esc(why)}.</b> Only the read-off (one run per seed) is shown; the '
                 "fitted CEG, its slope and time-CEG need at least 2 seeds.</div>")
    sec.html(summary_table(result))

    sec = page.section("Loss vs compute", "Each variant's final held-out loss at each budget, one marker per seed, "
                                          "and (with at least 2 seeds) its fitted power law E + A C^-alpha.")
    sec.figure(loss_compute_figure(result), "Fits share the irreducible loss E with the baseline (each variant is "
                                            "fitted jointly with it)." if result.get("fits") else
               "No fitted curves: the fits are made only with at least 2 seeds.")

    sec = page.section("CEG vs compute", "CEG(C) from the fitted curves with its 95% bootstrap band over seeds. A "
                                         "flat line is a compute-independent idea; a rising one grows with scale.")
    if result.get("ceg"):
        sec.figure(ceg_figure(result), "Dashed: CEG = 1, no change. Diamonds: the paper's read-off at the largest "
                                       "budget (mean over seeds, the bar their range).")
    else:
        sec.text("Absent: " + (result.get("note") or "no fitted CEG in this result") + ".")

    sec = page.section("Training curves", "Held-out loss along training at the largest budget: the curves the "
                                          "paper's read-off uses (where the variant first reaches the dotted line).")
    sec.figure(curves_figure(result), "Faint: each seed; bold: the seed mean.")

    sec = page.section("Loss vs wall-clock time", "The same losses against training seconds: the axis of "
                                                  "time-CEG, where a faster kernel shows its gain.")
    sec.figure(time_figure(result), "Faint markers: each seed; line: the mean per budget. Seconds depend on the "
                                    "machine and its load; compare time-CEGs only within one grid.")

    _setup(page.section("Setup"), result)
    return page
