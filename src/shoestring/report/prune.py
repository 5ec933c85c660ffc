"""The structured-pruning reports: one page for one ``shoestring prune run`` (:func:`prune_page`), one for a
quality-vs-size curve over criteria and ratios (:func:`curve_page`).

A run's page shows, in order: perplexity per domain (original, pruned, recovered, final / original), parameters
and measured speed beside the speedup the removed work would predict, the kept key-value groups and MLP
channels per layer (from the plan), and the recovery loss curve. A curve's page shows perplexity (log scale)
against the share of parameters removed, one line per criterion and domain (the task solid, the other domain
dashed), after pruning and after recovery, speed against size, and a table of every cell.

Missing parts (no plan, no recovery, no speed) are said, not drawn.

>>> html = prune_report(json.load(open("runs/prune-run-x/artifacts/result.json")),
...                     PruningPlan.load("runs/prune-run-x/plan.json"))          # doctest: +SKIP
>>> html = curve_report(prune_curve(config)["cells"])                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import math

from .page import Page, esc, table_html
from .style import COLOURS, figure

GREY = "#7b8794"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _f(v, fmt: str = ".2f") -> str:
    return format(v, fmt) if _finite(v) else "\u2014"


def _x(v) -> str:
    return f"{v:.2f}x" if _finite(v) else "\u2014"


def _domains(result: dict) -> list[str]:
    return list(((result.get("before") or {}).get("perplexity") or {}))


def _task(result: dict) -> str | None:
    return result.get("task") or (result.get("config") or {}).get("task")


def _plan(plan):
    """A :class:`~shoestring.prune.plan.PruningPlan` from a plan, its saved dict, or None."""
    if plan is None or not isinstance(plan, dict):
        return plan
    from ..prune.plan import PruningPlan

    return PruningPlan(model=plan["model"], kv_groups={int(k): v for k, v in (plan.get("kv_groups") or {}).items()},
                       channels={int(k): v for k, v in (plan.get("channels") or {}).items()},
                       drop_layers=list(plan.get("drop_layers") or []), meta=plan.get("meta") or {})


# ------------------------------------------------------------------------------------------------ one run

def perplexity_rows(result: dict) -> tuple[list[str], list[list]]:
    """``(columns, rows)``: per domain (the task marked) the perplexity original, pruned, recovered, final /
    original, and next-token accuracy original and final where the result has it."""
    rec = result.get("recovered") or {}
    final = rec or result.get("pruned") or {}
    task = _task(result)
    acc = "accuracy" in (result.get("before") or {})
    cols = ["domain", "original", "pruned", "recovered", "final / original"]
    cols += ["accuracy original", "accuracy final"] if acc else []
    rows = []
    for d in _domains(result):
        row = [f"{d} (task)" if d == task else d, _f(result["before"]["perplexity"][d]),
               _f((result.get("pruned") or {}).get("perplexity", {}).get(d)), _f((rec.get("perplexity") or {}).get(d)),
               _x((result.get("perplexity_ratio") or {}).get(d))]
        if acc:
            row += [_f(result["before"]["accuracy"].get(d), ".1%"), _f((final.get("accuracy") or {}).get(d), ".1%")]
        rows.append(row)
    return cols, rows


def widths(plan) -> dict:
    """``{"layers", "kv_kept", "kv_total", "ch_kept", "ch_total", "dropped"}`` per layer from a plan (dropped
    layers keep 0)."""
    plan = _plan(plan)
    m = plan.model
    L, G, I = m["num_hidden_layers"], m["num_key_value_heads"], m["intermediate_size"]
    drop = {int(i) for i in plan.drop_layers}
    kv = [0 if i in drop else len(plan.kv_groups.get(i, range(G))) for i in range(L)]
    ch = [0 if i in drop else len(plan.channels.get(i, range(I))) for i in range(L)]
    return {"layers": list(range(L)), "kv_kept": kv, "kv_total": G, "ch_kept": ch, "ch_total": I, "dropped": sorted(drop)}


def block_flops_kept(plan) -> float:
    """Share of the decoder blocks' matmul FLOPs per token the plan keeps (projections and MLP; the embedding,
    the LM head and the attention scores, which grow with the context, left out)."""
    plan = _plan(plan)
    m, w = plan.model, widths(plan)
    H, G, D, d = m["num_attention_heads"], m["num_key_value_heads"], m["hidden_size"], m["head_dim"]
    r = H // G

    def per_layer(g, c):  # q and o: g*r heads; k and v: g heads; gate, up, down: c channels
        return D * d * (2 * g * r + 2 * g) + 3 * D * c

    full = sum(per_layer(G, m["intermediate_size"]) for _ in w["layers"])
    return sum(per_layer(g, c) for g, c in zip(w["kv_kept"], w["ch_kept"])) / full


def speed_rows(result: dict, plan=None) -> list[list]:
    """Measured prefill seconds and decode tokens/s, original and pruned, the speedup and the speedup over the
    FLOP reduction (1: time fell as much as the work); then the speedups the removed work would predict: from
    the forward FLOPs (when the result has them), the parameters, and (with a plan) the decoder blocks' FLOPs."""
    b, a = (result.get("before") or {}).get("speed") or {}, (result.get("pruned") or {}).get("speed") or {}
    flops = result.get("flop_reduction")

    def over(v):
        return _f(v / flops, ".2f") if _finite(v) and _finite(flops) and flops else "\u2014"

    rows = []
    if b and a:
        rows += [["prefill (s, lower is better)", _f(b.get("prefill_s"), ".4f"), _f(a.get("prefill_s"), ".4f"),
                  _x(result.get("prefill_speedup")), over(result.get("prefill_speedup"))],
                 ["decode (tokens/s, higher is better)", _f(b.get("decode_tokens_per_s"), ".1f"),
                  _f(a.get("decode_tokens_per_s"), ".1f"), _x(result.get("decode_speedup")), over(result.get("decode_speedup"))]]
    if _finite(flops):
        fb, fa = (result.get("before") or {}).get("flops_per_token"), (result.get("pruned") or {}).get("flops_per_token")
        rows.append(["predicted from forward FLOPs per token", _f(fb, ".3g"), _f(fa, ".3g"), _x(flops), "1.00"])
    removed = result.get("params_removed")
    if _finite(removed) and removed < 1:
        rows.append(["predicted from parameters (1 / share kept)", "", "", _x(1 / (1 - removed)), ""])
    if plan is not None:
        rows.append(["predicted from block FLOPs (1 / share kept)", "", "", _x(1 / block_flops_kept(plan)), ""])
    return rows


def widths_figure(plan, kind: str = "kv"):
    """Kept and removed key-value groups (``kind="kv"``) or MLP channels (``"channels"``) per layer, stacked."""
    w = widths(plan)
    kept, total = (w["kv_kept"], w["kv_total"]) if kind == "kv" else (w["ch_kept"], w["ch_total"])
    what = "key-value groups" if kind == "kv" else "MLP channels"
    fig = figure(height=320, title=dict(text=f"{what} kept per layer (of {total})"), barmode="stack")
    fig.add_bar(x=w["layers"], y=kept, name="kept", marker_color=COLOURS[0],
                hovertemplate=f"layer %{{x}}: %{{y}} of {total} {what} kept<extra></extra>")
    fig.add_bar(x=w["layers"], y=[total - k for k in kept], name="removed", marker_color="#d9e2ec",
                hovertemplate=f"layer %{{x}}: %{{y}} of {total} {what} removed<extra></extra>")
    fig.update_xaxes(title_text="layer", dtick=1)
    fig.update_yaxes(title_text=what, range=[0, total])
    return fig


def loss_figure(recovered: dict):
    """The recovery fine-tuning's training loss per step, with a moving mean when there are many steps."""
    losses = [v for v in recovered.get("losses") or []]
    steps = list(range(1, len(losses) + 1))
    fig = figure(height=340, title=dict(text=f"Recovery loss ({recovered.get('tokens', '?')} tokens, "
                                             f"{len(losses)} step{'' if len(losses) == 1 else 's'})"))
    fig.add_scatter(x=steps, y=losses, mode="lines+markers" if len(losses) <= 40 else "lines", name="loss",
                    line=dict(color=COLOURS[0], width=1), hovertemplate="step %{x}: loss %{y:.4f}<extra></extra>")
    k = max(1, len(losses) // 20)
    if k > 1:
        mean = [sum(losses[max(0, i - k + 1): i + 1]) / len(losses[max(0, i - k + 1): i + 1]) for i in range(len(losses))]
        fig.add_scatter(x=steps, y=mean, mode="lines", name=f"mean of {k}", line=dict(color=COLOURS[1], width=2.5),
                        hovertemplate="step %{x}: moving mean %{y:.4f}<extra></extra>")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="training loss (nats / token)")
    return fig


def prune_page(result: dict, plan=None, title: str = "Structured pruning", meta: dict | None = None) -> Page:
    """The page of one pruning run (sections Perplexity, Size and speed, Kept widths per layer, Recovery, Setup).

    Parameters
    ----------
    result
        :func:`shoestring.prune.run.prune_experiment`'s result (or its ``artifacts/result.json``).
    plan
        The :class:`~shoestring.prune.plan.PruningPlan` (or its saved dict); without it there are no per-layer widths.
    """
    cfg = result.get("config") or {}
    removed = result.get("params_removed")
    page = Page(title, subtitle=f"{cfg.get('criterion', '?')} \u00b7 {_f(removed * 100 if _finite(removed) else None, '.1f')}% "
                                f"of parameters removed \u00b7 for {cfg.get('task', '?')}",
                meta={"criterion": cfg.get("criterion", "?"), **(meta or {})})
    sec = page.section("Perplexity", "Held-out perplexity per domain (lower is better): the task domain should "
                                     "rise less than the other when the pruning is specific to it.")
    cols, rows = perplexity_rows(result)
    sec.table(cols, rows, "Final is the recovered model when there was recovery, else the pruned one. Accuracy: "
                          "next-token top-1 on the same held-out text.")
    sec = page.section("Size and speed", "Parameters, and speed measured on one prompt (median of repeats).")
    b, a = (result.get("before") or {}).get("params"), (result.get("pruned") or {}).get("params")
    sec.table(["", "original", "pruned", "removed"],
              [["parameters", f"{b:,}" if _finite(b) else "\u2014", f"{a:,}" if _finite(a) else "\u2014",
                _f(removed * 100 if _finite(removed) else None, ".1f") + "%"]])
    if not ((result.get("before") or {}).get("speed")):
        sec.text("Speed was not measured in this run (speed off): only the predicted speedups are shown.")
    sec.table(["", "original", "pruned", "speedup", "speedup / FLOP reduction"], speed_rows(result, plan),
              "Timings are medians of repeats interleaved between the two models. Predicted speedups assume time "
              "follows the removed work; per-call overheads, the embedding and memory traffic do not shrink, so a "
              "small model speeds up less than predicted (speedup / FLOP reduction below 1).")
    sec = page.section("Kept widths per layer", "What the plan keeps in each layer: key-value groups (each with "
                                                "its query heads) and MLP channels.")
    if plan is None:
        sec.text("Absent: no plan was given to the report.")
    else:
        w = widths(plan)
        sec.figure(widths_figure(plan, "kv"), "Dropped layers keep nothing." if w["dropped"] else None)
        sec.figure(widths_figure(plan, "channels"))
    sec = page.section("Recovery", "Fine-tuning the pruned model on the task corpus for a fixed token budget.")
    rec = result.get("recovered")
    if rec and rec.get("losses"):
        n = rec.get("steps", len(rec["losses"]))
        sec.figure(loss_figure(rec), f"{n} step{'' if n == 1 else 's'} of "
                                     f"{(rec.get('config') or {}).get('batch_size', '?')} x "
                                     f"{(rec.get('config') or {}).get('length', '?')} tokens.")
    else:
        sec.text("Absent: this run had no recovery (recover tokens 0).")
    page.section("Setup").html("<details><summary>The run configuration</summary><pre>"
                               f"{esc(json.dumps(cfg, indent=1, sort_keys=True, default=str))}</pre></details>")
    return page


def prune_report(result: dict, plan=None, title: str = "Structured pruning", meta: dict | None = None) -> str:
    """:func:`prune_page` rendered: one self-contained HTML page."""
    return prune_page(result, plan, title, meta).render()


# ------------------------------------------------------------------------------------------------ a curve

def _criteria(cells: list[dict]) -> list[str]:
    return list(dict.fromkeys(c["criterion"] for c in cells))


def _curve_domains(cells: list[dict]) -> tuple[str | None, list[str]]:
    """The task domain and every domain (task first)."""
    task = next((_task(c) for c in cells if _task(c)), None)
    seen = list(dict.fromkeys(d for c in cells for d in _domains(c)))
    return task, sorted(seen, key=lambda d: d != task)


def _stage(cell: dict, stage: str) -> dict:
    return ((cell.get(stage) or {}).get("perplexity")) or {}


def curve_figure(cells: list[dict], stage: str = "pruned"):
    """Perplexity (log y) against the share of parameters removed: per criterion (colour) and domain (the task
    solid, the other dashed), each line starting at the original model (0 removed). ``stage``: ``"pruned"``
    or ``"recovered"``."""
    task, domains = _curve_domains(cells)
    when = "after recovery" if stage == "recovered" else "after pruning"
    fig = figure(height=440, title=dict(text=f"Perplexity vs parameters removed, {when}"))
    for i, name in enumerate(_criteria(cells)):
        mine = sorted((c for c in cells if c["criterion"] == name and _stage(c, stage)),
                      key=lambda c: (c.get("params_removed", 0), c.get("head_ratio", 0), c.get("channel_ratio", 0)))
        for d in domains:
            pts = [c for c in mine if _finite(_stage(c, stage).get(d))]
            if not pts:
                continue
            start = pts[0]["before"]["perplexity"].get(d)
            x = [0.0] + [c["params_removed"] for c in pts]
            y = [start] + [_stage(c, stage)[d] for c in pts]
            ratios = [["original"]] + [[f"heads {c.get('head_ratio', 0):g}, channels {c.get('channel_ratio', 0):g}"]
                                       for c in pts]
            fig.add_scatter(x=x, y=y, mode="lines+markers", name=f"{name}, {d}", legendgroup=name,
                            line=dict(color=COLOURS[i % len(COLOURS)], dash="solid" if d == task else "dash"),
                            marker=dict(symbol="circle" if d == task else "circle-open", size=7),
                            customdata=ratios,
                            hovertemplate=f"{esc(name)}, {esc(d)} (%{{customdata[0]}}): %{{x:.1%}} removed, "
                                          "perplexity %{y:.3g}<extra></extra>")
    fig.update_xaxes(title_text="share of parameters removed", tickformat=_share_ticks(cells), rangemode="tozero")
    fig.update_yaxes(title_text="held-out perplexity (log)", type="log")
    return fig


def speed_figure(cells: list[dict]):
    """Measured decode and prefill speedups against the share of parameters removed, beside the speedup the
    FLOP reduction predicts (or, without it, ``1 / (1 - removed)``); speed depends on the shapes, not on the
    criterion."""
    fig = figure(height=380, title=dict(text="Speedup vs parameters removed"))
    sized = sorted((c for c in cells if _finite(c.get("params_removed"))), key=lambda c: c["params_removed"])
    for key, label, sym in (("decode_speedup", "decode", "circle"), ("prefill_speedup", "prefill", "diamond-open")):
        pts = [c for c in sized if _finite(c.get(key))]
        if pts:
            fig.add_scatter(x=[c["params_removed"] for c in pts], y=[c[key] for c in pts], mode="markers", name=label,
                            marker=dict(symbol=sym, size=8), customdata=[[c["criterion"]] for c in pts],
                            hovertemplate=f"{label}, %{{customdata[0]}}: %{{x:.1%}} removed, %{{y:.2f}}x<extra></extra>")
    flops = [c for c in sized if _finite(c.get("flop_reduction"))]
    if flops:
        fig.add_scatter(x=[0.0] + [c["params_removed"] for c in flops], y=[1.0] + [c["flop_reduction"] for c in flops],
                        mode="lines", name="FLOP reduction", line=dict(color=GREY, dash="dot"),
                        hovertemplate="%{x:.1%} removed: %{y:.2f}x fewer FLOPs per token<extra></extra>")
    else:
        xs = [(sized[-1]["params_removed"] if sized else 0.0) * k / 20 for k in range(21)]
        fig.add_scatter(x=xs, y=[1 / (1 - x) for x in xs], mode="lines", name="1 / share kept",
                        line=dict(color=GREY, dash="dot"), hoverinfo="skip")
    fig.update_xaxes(title_text="share of parameters removed", tickformat=_share_ticks(cells), rangemode="tozero")
    fig.update_yaxes(title_text="speedup (x, pruned over original)")
    return fig


def originals(cells: list[dict]) -> dict | None:
    """``{domain: perplexity}`` of the original model when every cell agrees on it (the usual curve), else None."""
    seen = {json.dumps(_stage(c, "before"), sort_keys=True) for c in cells}
    return _stage(cells[0], "before") if len(seen) == 1 and cells else None


def curve_rows(cells: list[dict]) -> tuple[list[str], list[list]]:
    """``(columns, rows)``: one row per cell, criterion-major and by size; per domain the perplexity pruned,
    recovered (when any cell recovered) and final / original; the original's own column only when the cells
    disagree on it (else :func:`originals` gives it once)."""
    task, domains = _curve_domains(cells)
    stages = (["before"] if originals(cells) is None else []) + ["pruned"] + \
        (["recovered"] if any(c.get("recovered") for c in cells) else [])
    names = {"before": "original", "pruned": "pruned", "recovered": "recovered"}
    cols = ["criterion", "heads", "channels", "parameters removed"]
    for d in domains:
        tag = f"{d} (task)" if d == task else d
        cols += [f"{tag}: {names[s]}" for s in stages] + [f"{tag}: final / original"]
    cols += ["FLOP reduction", "prefill speedup", "decode speedup", "run"]
    rows = []
    order = {n: i for i, n in enumerate(_criteria(cells))}
    for c in sorted(cells, key=lambda c: (order[c["criterion"]], c.get("params_removed", 0))):
        row = [c["criterion"], f"{c.get('head_ratio', 0):g}", f"{c.get('channel_ratio', 0):g}",
               _f(c["params_removed"] * 100 if _finite(c.get("params_removed")) else None, ".2f") + "%"]
        for d in domains:
            row += [_f(_stage(c, s).get(d)) for s in stages] + [_x((c.get("perplexity_ratio") or {}).get(d))]
        rows.append(row + [_x(c.get("flop_reduction")), _x(c.get("prefill_speedup")), _x(c.get("decode_speedup")),
                           c.get("run", "")])
    return cols, rows


def _share_ticks(cells: list[dict]) -> str:
    top = max((c["params_removed"] for c in cells if _finite(c.get("params_removed"))), default=1.0)
    return ".0%" if top >= 0.1 else ".1%" if top >= 0.01 else ".2%"


def curve_page(cells: list[dict], title: str = "Pruning: quality vs size", meta: dict | None = None) -> Page:
    """The page of a quality-vs-size curve (sections Perplexity vs size, Speed vs size, Every cell).

    Parameters
    ----------
    cells
        :func:`shoestring.prune.curve.prune_curve`'s ``cells``: each a :func:`prune_experiment` result plus
        ``criterion``, ``head_ratio``, ``channel_ratio`` (and ``task``, ``run`` where known).
    """
    task, _ = _curve_domains(cells)
    crit = _criteria(cells)
    page = Page(title, subtitle=f"{len(crit)} criteria x {len(cells) // max(1, len(crit))} sizes \u00b7 for {task}",
                meta={"criteria": ", ".join(crit), "cells": len(cells), **(meta or {})})
    sec = page.section("Perplexity vs size", "Held-out perplexity (log scale) as more of the model is removed: one "
                                             "colour per criterion; the task domain solid, the other domain dashed. "
                                             "A good criterion stays low; a task-specific one keeps its solid line "
                                             "below its dashed one.")
    if not cells:
        sec.text("Absent: the curve has no cells.")
        return page
    sec.figure(curve_figure(cells, "pruned"), "Each line starts at the original model (0% removed).")
    if any(c.get("recovered") for c in cells):
        sec.figure(curve_figure(cells, "recovered"), "The same cells after recovery fine-tuning on the task corpus "
                                                     "(the same token budget for every cell).")
    else:
        sec.text("No recovery: the cells were not fine-tuned after pruning.")
    sec = page.section("Speed vs size", "Measured speedups of every cell; the dotted line is what the removed "
                                        "work alone would predict.")
    if not any(_finite(c.get("decode_speedup")) for c in cells):
        sec.text("Speed was not measured in these cells (speed off): only the predicted speedup is drawn.")
    sec.figure(speed_figure(cells), "Speed depends only on the kept shapes, so the criteria overlap here; "
                                    "timings on a loaded machine are noisy.")
    cols, rows = curve_rows(cells)
    base = originals(cells)
    cap = "Held-out perplexity per domain; final / original is after recovery when there was recovery." + (
        " The original model: " + ", ".join(f"{d} {_f(v)}" for d, v in base.items()) + "." if base else "")
    page.section("Every cell").html(table_html(cols, rows, cap).replace('class="data"', 'class="data prune-curve"', 1))
    return page


def curve_report(cells: list[dict], title: str = "Pruning: quality vs size", meta: dict | None = None) -> str:
    """:func:`curve_page` rendered: one self-contained HTML page."""
    return curve_page(cells, title, meta).render()
