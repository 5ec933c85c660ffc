"""The KV-cache compression report: one page from the result dict of ``shoestring kv bench``.

What it shows, in order: the design (model, query-aware or query-agnostic mode, budgets, lengths), quality
against cache budget per task (the Pareto view: one line per policy with its 95% band, the full cache as a
dashed reference) with a summary table that marks the best policy per budget, retrieval heat maps (accuracy
over length x needle depth, one small map per policy), perplexity along a long text (NLL per position, the
cache budget marked), and what each setting cost (cache tokens and bytes per layer, peak memory, speed).

A run may hold only some of this (only perplexity, no cost rows): every section then says what is absent.

>>> page = kv_page(json.load(open("runs/kv/result.json")), meta={"run": "kv-0001"})   # doctest: +SKIP
>>> page.save("runs/kv/report.html")                                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

from .kv_cost import COST_COLUMNS, cache_bytes_figure, cost_lengths, cost_rows
from .kv_result import (FULL, FULL_COLOUR, MODES, _budgets, _cache_phrase, _colour, _finite, _lengths, _list, _policies,
                        _retrieval_rows, _rgba, _same, _summary, _tasks, budget_label, default_budget, depth_tasks,
                        is_tokens, num, task_info)
from .page import Page, esc
from .style import figure, template


def quality_figure(result: dict, task: str, log_x: bool = True, tokens: bool = False):
    """Mean score against budget fraction, one line per policy with its 95% interval as a band; the full cache
    sits at 1.0 and as a dashed horizontal line (its interval shaded). ``tokens``: the budgets given as token
    counts instead, on an axis of tokens (the full cache only as the line)."""
    every = _summary(result, task)
    rows = [r for r in every if r.get("budget") is None or is_tokens(r["budget"]) == tokens]
    metric, hib = task_info(result, task)
    fig = figure(height=400, title=dict(text=f"{task}: {metric} vs cache budget{' in tokens' if tokens else ''} "
                                             f"({'higher' if hib else 'lower'} is better; 95% CI)"))
    full = next((r for r in rows if r.get("policy") == FULL and _finite(r.get("mean"))), None)
    if full is not None:
        if _finite(full.get("ci_low")) and _finite(full.get("ci_high")):
            fig.add_hrect(y0=full["ci_low"], y1=full["ci_high"], fillcolor=FULL_COLOUR, opacity=0.08, line_width=0)
        fig.add_hline(y=full["mean"], line_dash="dash", line_color=FULL_COLOUR, line_width=1.5,
                      annotation_text=f"full cache {num(full['mean'])}", annotation_position="bottom left")
        if not tokens:
            fig.add_scatter(x=[1.0], y=[full["mean"]], mode="markers", name="full cache", legendgroup=FULL,
                            marker=dict(color=FULL_COLOUR, size=9, symbol="diamond"),
                            error_y=_error_bar(full), hovertemplate="full cache: %{y:.4g}<extra></extra>")
    for policy in _policies(result, rows):
        if policy == FULL:
            continue
        pts = sorted(((r["budget"], r) for r in rows if r.get("policy") == policy and _finite(r.get("budget"))
                      and _finite(r.get("mean"))), key=lambda t: t[0])
        if not pts:
            continue
        x = [b for b, _ in pts]
        c = _colour(result, policy)
        lo = [r.get("ci_low") if _finite(r.get("ci_low")) else r["mean"] for _, r in pts]
        hi = [r.get("ci_high") if _finite(r.get("ci_high")) else r["mean"] for _, r in pts]
        fig.add_scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", mode="lines", line=dict(width=0),
                        fillcolor=_rgba(c, 0.15), legendgroup=policy, showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=x, y=[r["mean"] for _, r in pts], mode="lines+markers", name=policy, legendgroup=policy,
                        line=dict(color=c), marker=dict(color=c),
                        error_y=dict(type="data", symmetric=False, array=[hi[0] - pts[0][1]["mean"]],
                                     arrayminus=[pts[0][1]["mean"] - lo[0]], color=c) if len(pts) == 1 else None,
                        customdata=[[budget_label(b), r.get("ci_low"), r.get("ci_high"), r.get("n")] for b, r in pts],
                        hovertemplate=f"{esc(policy)} @ %{{customdata[0]}}: %{{y:.4g}} "
                                      "[%{customdata[1]:.4g}, %{customdata[2]:.4g}], n=%{customdata[3]}<extra></extra>")
    if tokens:
        ticks = sorted(b for b in _budgets({}, rows) if is_tokens(b))
        fig.update_xaxes(title_text="cache budget (tokens per layer)", type="log" if log_x else "linear",
                         tickvals=ticks, ticktext=[f"{t:,.0f}" for t in ticks])
    else:
        ticks = sorted({b for b in _budgets(result, rows) if not is_tokens(b)} | {1.0})
        fig.update_xaxes(title_text="cache budget (fraction of the context)", type="log" if log_x else "linear",
                         tickvals=ticks, ticktext=[budget_label(None if t == 1.0 else t) for t in ticks])
    fig.update_yaxes(title_text=metric)
    return fig


def _error_bar(r: dict):
    if not (_finite(r.get("ci_low")) and _finite(r.get("ci_high"))):
        return None
    return dict(type="data", symmetric=False, array=[r["ci_high"] - r["mean"]], arrayminus=[r["mean"] - r["ci_low"]],
                color=FULL_COLOUR)


def best_policies(result: dict, task: str) -> dict:
    """``{budget: [policy, ...]}``: the compressed policies with the best mean at each budget (higher or lower
    as the task says; ties all count). The full cache is the reference, never a contender."""
    _, hib = task_info(result, task)
    by_budget = defaultdict(list)
    for r in _summary(result, task):
        if r.get("policy") != FULL and r.get("budget") is not None and _finite(r.get("mean")):
            by_budget[r["budget"]].append(r)
    best = {}
    for b, rows in by_budget.items():
        top = (max if hib else min)(r["mean"] for r in rows)
        best[b] = [r["policy"] for r in rows if math.isclose(r["mean"], top, rel_tol=1e-12, abs_tol=1e-15)]
    return best


def summary_table(result: dict, task: str) -> str:
    """Rows are policies, columns budgets (the full cache first); a cell is ``mean [ci_low, ci_high]`` over
    ``relative_to_full`` and n, the best policy per budget bold with a star."""
    rows = _summary(result, task)
    metric, hib = task_info(result, task)
    budgets = _budgets(result, rows)
    has_full = any(r.get("budget") is None for r in rows)
    cols = ([None] if has_full else []) + budgets
    best = best_policies(result, task)
    head = "<th>policy</th>" + "".join(f"<th>{esc('full cache' if b is None else budget_label(b))}</th>" for b in cols)
    body = []
    for policy in _policies(result, rows):
        mine = [r for r in rows if r.get("policy") == policy]
        if not mine:
            continue
        cells = []
        for b in cols:
            r = next((r for r in mine if _same(r.get("budget"), b)), None)
            if r is None:
                cells.append('<td class="na">&mdash;</td>')
                continue
            text = esc(num(r.get("mean")))
            if _finite(r.get("ci_low")) and _finite(r.get("ci_high")):
                text += f" [{esc(num(r['ci_low']))}, {esc(num(r['ci_high']))}]"
            rel = r.get("relative_to_full")
            notes = ([f"{rel:.0%} of full"] if _finite(rel) and policy != FULL else []) + \
                    ([f"n={r['n']}"] if r.get("n") is not None else [])
            small = f"<br><small>{esc(' · '.join(notes))}</small>" if notes else ""
            if b is not None and policy in best.get(b, []):
                cells.append(f'<td class="best" style="background:#e3f9e5" title="best at this budget">'
                             f"<b>{text}</b> &#9733;{small}</td>")
            else:
                cells.append(f"<td>{text}{small}</td>")
        body.append(f"<tr><td>{esc(policy)}</td>{''.join(cells)}</tr>")
    ratio = "policy / full" if hib else "full / policy"
    cap = (f"{metric}, {'higher' if hib else 'lower'} is better: mean [95% CI] over the cases; the second line is the "
           f"share of the full cache's quality kept ({ratio}, 100% = no loss) and the number of cases. \u2605 marks "
           "the best mean at each budget (ties all marked); where the intervals overlap, the ranking is not settled.")
    return (f'<table class="data kv-summary" data-task="{esc(task)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table><p class="caption">{esc(cap)}</p>')


# ----------------------------------------------------------------------------------- retrieval heat maps

def retrieval_grid(result: dict, task: str, policy: str, budget) -> tuple[list, list, list]:
    """``(lengths, depths, grid)``: the mean score over seeds per (length, depth) for one policy at one
    budget (None: the full cache); a cell without cases is None."""
    acc = defaultdict(list)
    every = _retrieval_rows(result, task)
    for r in every:
        if r.get("policy") == policy and _same(r.get("budget"), budget) and _finite(r.get("score")):
            acc[(r["length"], r["depth"])].append(r["score"])
    lengths = sorted({r["length"] for r in every})
    depths = sorted({r["depth"] for r in every})
    grid = [[sum(acc[(n, d)]) / len(acc[(n, d)]) if acc.get((n, d)) else None for d in depths] for n in lengths]
    return lengths, depths, grid


def retrieval_heatmaps(result: dict, task: str, budget=None):
    """Small heat maps side by side, one per policy at ``budget`` (default: the largest below the full cache)
    plus the full cache: rows are context lengths, columns needle depths, all on one colour scale."""
    from plotly.subplots import make_subplots

    scores = _retrieval_rows(result, task)
    budget = default_budget({}, scores) if budget is None else budget
    panels = []
    for policy in _policies(result, scores):
        b = None if policy == FULL else budget
        _, _, grid = retrieval_grid(result, task, policy, b)
        if any(v is not None for row in grid for v in row):
            panels.append((policy, b, grid))
    metric, _ = task_info(result, task)
    values = [v for _, _, g in panels for row in g for v in row if v is not None]
    lo, hi = (0.0, 1.0) if values and min(values) >= 0 and max(values) <= 1 else (min(values, default=0),
                                                                                   max(values, default=1))
    n = max(1, len(panels))
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    titles = [("full cache" if p == FULL else f"{p} @ {budget_label(b)}") for p, b, _ in panels]
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles or None, horizontal_spacing=0.07,
                        vertical_spacing=min(0.3, 0.5 / nrows) if nrows > 1 else 0.1)
    lengths, depths = (sorted({r["length"] for r in scores}), sorted({r["depth"] for r in scores}))
    xs, ys = [f"{d * 100:g}%" for d in depths], [str(v) for v in lengths]
    show_text = len(xs) * len(ys) <= 48
    for i, (policy, b, grid) in enumerate(panels):
        text = [["" if v is None else f"{v:.2f}" for v in row] for row in grid]
        fig.add_heatmap(z=grid, x=xs, y=ys, coloraxis="coloraxis", xgap=1, ygap=1, text=text,
                        texttemplate="%{text}" if show_text else None, textfont=dict(size=10),
                        hovertemplate=f"{esc(titles[i])}<br>length %{{y}}, depth %{{x}}: %{{z:.3f}}<extra></extra>",
                        row=i // cols + 1, col=i % cols + 1)
    per_row = 90 + 26 * len(ys)
    fig.update_layout(template=template(), height=min(1400, 70 + nrows * per_row),
                      title=dict(text=f"{task}: {metric} by context length x needle depth "
                                      f"(policies at {budget_label(budget)})"),
                      coloraxis=dict(colorscale="Viridis", cmin=lo, cmax=hi, colorbar=dict(title=dict(text=metric))))
    fig.update_xaxes(type="category", showgrid=False)
    fig.update_yaxes(type="category", showgrid=False)
    for i in range(len(panels)):
        at = dict(row=i // cols + 1, col=i % cols + 1)
        fig.update_xaxes(title_text="needle depth" if i // cols == nrows - 1 else "", **at)
        fig.update_yaxes(title_text="length" if i % cols == 0 else "", **at)
    return fig


# ---------------------------------------------------------------------------------- perplexity curves

def nll_figure(result: dict, budget, length=None):
    """Mean NLL per position bucket along the long text, one line per policy at ``budget`` (and the full cache,
    dashed); a dotted vertical line where the text outgrows the cache budget (``window_tokens``)."""
    curves = [c for c in result.get("curves") or [] if length is None or c.get("length") == length]
    mine = [c for c in curves if c.get("policy") == FULL or _same(c.get("budget"), budget)]
    where = f", {num(length)} tokens" if length is not None else ""
    at = _cache_phrase(budget)
    fig = figure(height=380, title=dict(text=f"NLL along the text at {at}{where}"))
    windows = set()
    for policy in _policies(result, mine):
        for c in (c for c in mine if c.get("policy") == policy):
            if not _list(c.get("positions")):
                continue
            full = policy == FULL
            col = _colour(result, policy)
            fig.add_scatter(x=_list(c["positions"]), y=[v if _finite(v) else None for v in _list(c.get("nll"))],
                            mode="lines", name="full cache" if full else policy,
                            line=dict(color=col, dash="dash" if full else "solid", width=1.5 if full else 2),
                            hovertemplate=f"{esc(policy)}: position %{{x}}, NLL %{{y:.3f}}<extra></extra>")
            if not full and _finite(c.get("window_tokens")):
                windows.add(c["window_tokens"])
    for w in sorted(windows):
        fig.add_vline(x=w, line_dash="dot", line_color="#9aa5b1",
                      annotation_text=f"cache budget {num(w)} tokens", annotation_position="top right")
    fig.update_xaxes(title_text="position in the text (tokens)")
    fig.update_yaxes(title_text="mean NLL (nats / token)")
    return fig


# --------------------------------------------------------------------------------------------- cost

def absent_parts(result: dict) -> list[str]:
    """What this run lacks, in words (empty for a complete run)."""
    missing = []
    if not result.get("summary"):
        missing.append("summary rows (no quality-vs-budget views)")
    if not depth_tasks(result):
        missing.append("retrieval (no task with needle depths, so no heat maps)")
    if not result.get("curves"):
        missing.append("perplexity curves along the text")
    if not result.get("cost"):
        missing.append("cost measurements")
    if not any(r.get("policy") == FULL for r in result.get("summary") or []):
        missing.append("the full-cache baseline in the summary")
    return missing


def kv_page(result: dict, title: str = "KV-cache compression benchmark", meta: dict | None = None,
            heatmap_budget: float | None = None, log_x: bool = True) -> Page:
    """The whole report of one ``shoestring kv bench`` result: sections Design, Quality vs budget: <task>
    (one per task), Retrieval heat maps, Perplexity along the text, Cost."""
    mode = result.get("mode") or "unknown"
    page = Page(title, subtitle=f"{result.get('model', 'unknown model')} · {mode}",
                meta={"model": result.get("model", "unknown"), "mode": mode, **(meta or {})})
    _design(page.section("Design"), result, mode)

    tasks = _tasks(result)
    summarised = [t for t in tasks if _summary(result, t)]
    for task in summarised:
        metric, hib = task_info(result, task)
        sec = page.section(f"Quality vs budget: {task}",
                           f"{metric} ({'higher' if hib else 'lower'} is better) at each cache budget. A policy whose "
                           "line stays on the dashed full-cache line loses nothing at that budget.")
        if any(r.get("budget") is None or not is_tokens(r["budget"]) for r in _summary(result, task)):
            sec.figure(quality_figure(result, task, log_x=log_x))
        if any(is_tokens(r.get("budget")) for r in _summary(result, task)):
            sec.figure(quality_figure(result, task, log_x=log_x, tokens=True))
        sec.html(summary_table(result, task))
    if not summarised:
        page.section("Quality vs budget").text(
            "Absent: this run has no summary rows" + (f" (tasks named: {', '.join(map(str, tasks))})" if tasks else "")
            + ", so there is no quality-vs-budget view.")

    sec = page.section("Retrieval heat maps",
                       "Accuracy of retrieving a needle, by context length (rows) and needle depth (columns, 0% = "
                       "start of the text): one map per policy at one budget, and the full cache.")
    found = depth_tasks(result)
    if not found:
        sec.text("Absent: this run has no retrieval task (no score rows with a needle depth), so there are no "
                 "heat maps.")
    for task in found:
        sec.figure(retrieval_heatmaps(result, task, heatmap_budget),
                   f"{task}: the mean over seeds per cell; an empty cell had no cases.")

    sec = page.section("Perplexity along the text",
                       "Mean NLL per position bucket on a long text. Past the dotted line the text no longer fits "
                       "the cache: a plain window that drops the first tokens (the attention sinks) climbs there, "
                       "StreamingLLM, which keeps them, stays flat.")
    curves = result.get("curves") or []
    if not curves:
        sec.text("Absent: this run has no perplexity curves.")
    lengths = sorted({c.get("length") for c in curves if c.get("length") is not None})
    for length in (lengths or [None]) if curves else []:
        these = [c for c in curves if length is None or c.get("length") == length]
        for b in _budgets({}, [c for c in these if c.get("policy") != FULL]) or [None]:
            sec.figure(nll_figure(result, b, length if len(lengths) > 1 else None))

    sec = page.section("Cost", "Per policy and budget: what the cache held (tokens per layer, bytes against the "
                               "bytes expected from the held tokens), the peak, process memory and speed.")
    if result.get("cost"):
        for length in cost_lengths(result):
            head = f"context length {num(length)} tokens" if length is not None else "no length given"
            sec.html(f"<h3>{esc(head)}</h3>")
            sec.table(COST_COLUMNS, cost_rows(result, length))
        how = sorted({str(r["memory_how"]) for r in result["cost"] if r.get("memory_how")})
        sec.html('<p class="caption">cache tokens / layer: the least and most any layer held at the end; bytes error: '
                 "(held - expected) / expected, expected from the held tokens; peak cache tokens: the most held at any "
                 "time (during prefill chunks); peak memory: "
                 + esc(", ".join(how) if how else "the bench's peak_rss_mb") + ".</p>")
        if any(_list(r.get("cache_bytes_per_layer")) for r in result["cost"]):
            sec.figure(cache_bytes_figure(result), "One setting; policies with the same budget per layer draw on top "
                                                   "of each other (hover for each).")
    else:
        sec.text("Absent: this run has no cost measurements.")
    return page


def _design(sec, result: dict, mode: str) -> None:
    why = MODES.get(mode, "The run does not say whether compression saw the question; read scores with care.")
    sec.html('<div class="kv-mode" style="border-left:5px solid #d64545;background:#fff5f5;padding:0.5em 0.9em;'
             f'margin:0.6em 0;"><b style="font-size:1.15em">Mode: {esc(mode)}.</b> {esc(why)}</div>')
    scores = result.get("scores") or []
    seen = [r for key in ("summary", "scores", "curves", "cost") for r in result.get(key) or []]
    policies = [p for p in _policies(result, seen) if p is not None]
    depths = sorted({r["depth"] for r in scores if _finite(r.get("depth"))})
    seeds = sorted({r["seed"] for r in scores if r.get("seed") is not None})
    n_layers = result.get("n_layers")
    if n_layers is None:  # not written by every bench version: the cost rows hold one entry per layer
        n_layers = next((len(_list(r.get("cache_tokens_per_layer"))) for r in result.get("cost") or []
                         if _list(r.get("cache_tokens_per_layer"))), None)
    rows = [["model", result.get("model", "n/a")], ["layers", num(n_layers)], ["mode", mode],
            ["prefill chunk (tokens)", num(result.get("chunk"))],
            *([["cache quantisation", "none" if result["quant"] is None else f"{result['quant']} bits"]]
              if "quant" in result else []),
            ["policies", ", ".join(map(str, policies)) or "none"],
            ["budgets (fraction of the context, or tokens)", ", ".join(budget_label(b) for b in _budgets(result))
             or "none"],
            ["context lengths", ", ".join(num(n) for n in _lengths(result)) or "none"],
            ["needle depths", ", ".join(f"{d * 100:g}%" for d in depths) or "none"],
            ["seeds", ", ".join(map(str, seeds)) or "none"]]
    for task in _tasks(result):
        metric, hib = task_info(result, task)
        n = sum(r.get("task") == task for r in scores)
        rows.append([f"task: {task}", f"{metric}, {'higher' if hib else 'lower'} is better; {n} scored cases"])
    sec.table(["", "this run"], rows, "The full cache (no compression) is the baseline every policy is compared with.")
    missing = absent_parts(result)
    if missing:
        sec.text("Absent from this run: " + "; ".join(missing) + ".")
    if isinstance(result.get("config"), dict):
        sec.html("<details><summary>The bench configuration</summary><pre>"
                 f"{esc(json.dumps(result['config'], indent=1, sort_keys=True, default=str))}</pre></details>")
