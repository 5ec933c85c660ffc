"""The red-teaming report: one page for one attack suite (:func:`attack_page`), one for a grid of suites over
compression settings (:func:`grid_page`, "compression x safety").

A suite's page shows, in order: attack success rate (ASR) per attack and judge with 95% Wilson intervals and the
mean compute spent; ASR per behaviour category; ASR against compute (steps, forward passes, seconds) for search
attacks; the search loss per step; how often the judges agree (Cohen's kappa); over-refusal on benign requests;
examples; the setup. Prompts and responses are adversarial text: every one is escaped, none reaches a figure.

>>> html = attack_report(json.load(open("runs/attack-x/artifacts/result.json")))   # doctest: +SKIP
"""

from __future__ import annotations

import json
import math

from ..attack import metrics as M
from .page import Page
from .style import COLOURS, figure

DASH = "\u2014"
AXES = {"steps": "optimisation steps", "forward_passes": "forward passes (target model)", "seconds": "seconds"}
HARMBENCH = ("Refusal phrase matching agrees with human labels only about 70% of the time (Mazeika et al. 2024, "
             "HarmBench, https://arxiv.org/abs/2402.04249): read its ASR as a rough upper bound, and the examples.")


def _fin(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pct(v) -> str:
    return f"{v:.1%}" if _fin(v) else DASH


def _ci(r: dict, key: str = "asr") -> str:
    return f"{_pct(r[key])} [{_pct(r['lo'])}, {_pct(r['hi'])}]" if r.get("n") else DASH


def _num(v, fmt: str = ".1f") -> str:
    return format(v, fmt) if _fin(v) else DASH


def _cut(text, n: int) -> str:
    text = str(text or "")
    return text if len(text) <= n else text[:n] + "\u2026"


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def _error_y(rows: list) -> dict:
    """Asymmetric error bars from rate rows (None or ``n == 0``: no bar)."""
    ok = [r is not None and bool(r.get("n")) for r in rows]
    return dict(type="data", symmetric=False, array=[r["hi"] - r["asr"] if o else 0 for r, o in zip(rows, ok)],
                arrayminus=[r["asr"] - r["lo"] if o else 0 for r, o in zip(rows, ok)])


KN = "(%{customdata[0]} of %{customdata[1]})"


def _attacks(result: dict) -> list[str]:
    listed = list(result.get("attacks") or [])
    return listed + [a for a in M.group(result.get("records") or [], "attack") if a not in listed]


def _by_attack(result: dict) -> dict:
    groups = M.group(result.get("records") or [], "attack")
    return {a: groups[a] for a in _attacks(result) if a in groups}


def _searched(records: list[dict]) -> bool:
    return any(row.get("verdicts") for r in records for row in r.get("trace") or [])


# ------------------------------------------------------------------------------------------------ figures

def category_figure(result: dict, judge: str):
    """ASR by ``judge`` per behaviour category: one bar per attack, with 95% Wilson error bars."""
    by = _by_attack(result)
    cats = list(M.group(result.get("records") or [], "category"))
    fig = figure(height=380, title=dict(text=f"ASR per category ({judge} judge)"), barmode="group")
    for i, (attack, rs) in enumerate(by.items()):
        s = M.asr_by(rs, judge)
        rows = [s.get(c, M.rate(0, 0)) for c in cats]
        y = [r["asr"] if r["n"] else None for r in rows]
        fig.add_bar(x=cats, y=y, name=attack, marker_color=COLOURS[i % len(COLOURS)],
                    error_y=_error_y(rows), customdata=[[r["k"], r["n"]] for r in rows],
                    hovertemplate=f"{attack}, %{{x}}: %{{y:.1%}} {KN}<extra></extra>")
    fig.update_yaxes(title_text="attack success rate", tickformat=".0%", range=[0, 1.05])
    fig.update_xaxes(title_text="category")
    return fig


def curve_figure(records: list[dict], judges, axis: str = "steps", attack: str = ""):
    """ASR against compute (``axis``) for one search attack: one step line per judge in its 95% band."""
    fig = figure(height=360, title=dict(text=f"{attack}: ASR vs {AXES.get(axis, axis)}"),
                 legend=dict(traceorder="normal"))  # fill="tonexty" would reverse it
    for i, j in enumerate(judges):
        pts = M.asr_curve(records, j, axis)
        if not pts:
            continue
        c, x = COLOURS[i % len(COLOURS)], [p["x"] for p in pts]
        fig.add_scatter(x=x, y=[p["lo"] for p in pts], mode="lines", line=dict(width=0, shape="hv"),
                        showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=x, y=[p["hi"] for p in pts], mode="lines", line=dict(width=0, shape="hv"), fill="tonexty",
                        fillcolor=_rgba(c, 0.15), showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=x, y=[p["asr"] for p in pts], mode="lines", name=j, line=dict(color=c, width=2, shape="hv"),
                        customdata=[[p["k"], p["n"]] for p in pts],
                        hovertemplate=f"{j}: %{{y:.1%}} {KN} by %{{x:.4g}}<extra></extra>")
    fig.update_xaxes(title_text=AXES.get(axis, axis))
    fig.update_yaxes(title_text="attack success rate", tickformat=".0%", range=[0, 1.05])
    return fig


def loss_figure(records: list[dict], attack: str = "", judge: str | None = None):
    """The search loss per step, one line per behaviour; stars mark checks where ``judge`` saw success."""
    fig = figure(height=380, title=dict(text=f"{attack}: loss per step, per behaviour"))
    for i, r in enumerate(records):
        rows = [t for t in r.get("trace") or [] if _fin(t.get("loss")) and t.get("step") is not None]
        every = [v for v in (r.get("extra") or {}).get("losses") or [] if _fin(v)]  # each step's loss, when kept
        if not rows and not every:
            continue
        bid, c = str(M.field_of(r, "id")), COLOURS[i % len(COLOURS)]
        xs, ys = (list(range(1, len(every) + 1)), every) if every else ([t["step"] for t in rows], [t["loss"] for t in rows])
        fig.add_scatter(x=xs, y=ys, mode="lines", name=bid,
                        line=dict(color=c, width=1.5),
                        hovertemplate=f"{bid}, step %{{x}}: loss %{{y:.3f}}<extra></extra>")
        hits = [t for t in rows if judge and (t.get("verdicts") or {}).get(judge) == 1]
        if hits:
            on_line = [every[t["step"] - 1] if 0 < t["step"] <= len(every) else t["loss"] for t in hits]
            fig.add_scatter(x=[t["step"] for t in hits], y=on_line, mode="markers", showlegend=False,
                            marker=dict(symbol="star", size=9, color=c),
                            hovertemplate=f"{bid}, step %{{x}}: success ({judge})<extra></extra>")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss (target tokens, nats)")
    return fig


# ------------------------------------------------------------------------------------------------ tables

def summary_rows(result: dict) -> tuple[list[str], list[list]]:
    """``(columns, rows)``: per attack and judge the ASR with its interval and k / n; the attack's mean compute
    per behaviour on its first row."""
    cols = ["attack", "judge", "ASR [95% CI]", "k / n", "steps", "forward passes", "seconds", "peak memory (MiB)"]
    rows = []
    for attack, rs in _by_attack(result).items():
        comp = M.mean_compute(rs)
        for i, j in enumerate(result.get("judges") or []):
            s = M.asr(rs, j)
            extra = [_num(comp["steps"]), _num(comp["forward_passes"]), _num(comp["seconds"], ".2f"),
                     _num(comp["peak_memory_bytes"] / 2**20)] if i == 0 else [""] * 4
            rows.append([attack, j, _ci(s), f"{s['k']} / {s['n']}", *extra])
    return cols, rows


def category_rows(result: dict) -> tuple[list[str], list[list]]:
    """``(columns, rows)``: per attack and category, the ASR [95% CI] (k / n) of every judge."""
    judges = result.get("judges") or []
    rows = []
    for attack, rs in _by_attack(result).items():
        per = {j: M.asr_by(rs, j) for j in judges}
        for cat in M.group(rs, "category"):
            rows.append([attack, cat] + [f"{_ci(per[j][cat])} ({per[j][cat]['k']}/{per[j][cat]['n']})" for j in judges])
    return ["attack", "category", *judges], rows


def example_rows(result: dict, per_attack: int = 3, chars: int = 240) -> tuple[list[str], list[list]]:
    """``(columns, rows)``: up to ``per_attack`` records per attack (those most judges call a success first), the
    prompt and response cut to ``chars`` characters, and every judge's verdict."""
    judges = result.get("judges") or []
    rows = []
    for attack, rs in _by_attack(result).items():
        best = sorted(rs, key=lambda r: -sum((r.get("verdicts") or {}).values()))[:per_attack]
        for r in best:
            v, s = r.get("verdicts") or {}, r.get("scores") or {}
            said = ", ".join((f"{j}: {'success' if v[j] else 'fail'}" if j in v else f"{j}: {DASH}")
                             + (f" ({s[j]:.2f})" if j == "llm" and _fin(s.get(j)) else "") for j in judges)
            rows.append([M.field_of(r, "id"), M.field_of(r, "category"), attack, _cut(r.get("prompt"), chars),
                         _cut(r.get("response"), chars), said])
    return ["behaviour", "category", "attack", "prompt", "response", "verdicts"], rows


# ------------------------------------------------------------------------------------------------ pages

def attack_page(result: dict, title: str = "Red-teaming: attack success", meta: dict | None = None,
                examples: int = 3) -> Page:
    """The page of one attack suite (sections Summary, ASR per category, ASR vs compute, Loss per step, Judge
    agreement, Over-refusal, Examples, Setup).

    Parameters
    ----------
    result
        The suite's result: ``model``, ``judges``, ``attacks``, ``records`` (attempt dicts with ``verdicts``,
        ``scores`` and, for searches, judged ``trace`` rows), optionally ``config``, ``compression`` and
        ``benign`` (``{"records": [...]}``).
    examples
        How many example records to show per attack.
    """
    from ..attack.judging import VERDICTS

    judges, records = list(result.get("judges") or []), result.get("records") or []
    by = _by_attack(result)
    comp = result.get("compression") or "none"
    page = Page(title, subtitle=f"{result.get('model', '?')} \u00b7 {len(by)} attacks \u00b7 "
                                f"{len(M.group(records, 'id'))} behaviours \u00b7 compression: {comp}",
                meta={"model": result.get("model", "?"), "compression": comp, "judges": ", ".join(judges),
                      **(meta or {})})
    rules = "; ".join(f"{j}: {VERDICTS[j].meaning}" for j in judges if j in VERDICTS)
    sec = page.section("Summary", "Attack success rate (ASR) per attack and judge, with the 95% Wilson interval, and "
                                  "the mean compute each attack spent per behaviour.")
    cols, rows = summary_rows(result)
    sec.table(cols, rows, f"Success means, per judge: {rules}." if rules else None)
    if not records:
        sec.text("Absent: the result has no records.")
    sec = page.section("ASR per category", "The same rates split by the behaviours' categories.")
    cols, rows = category_rows(result)
    sec.table(cols, rows)
    if records and judges:
        sec.figure(category_figure(result, judges[0]), f"Bars: the {judges[0]} judge; whiskers: 95% Wilson intervals.")
    sec = page.section("ASR vs compute", "For search attacks: the share of behaviours broken at some check within the "
                                         "compute spent so far (a behaviour stopped early on success stays broken).")
    searches = {a: rs for a, rs in by.items() if _searched(rs)}
    if not searches:
        sec.text("Absent: no attack in this suite recorded a search trace.")
    for attack, rs in searches.items():
        for axis in AXES:
            if any(t.get("step" if axis == "steps" else axis) is not None for r in rs for t in r.get("trace") or []):
                sec.figure(curve_figure(rs, judges, axis, attack),
                           f"Bands: 95% Wilson intervals over {len(rs)} behaviours.")
    sec = page.section("Loss per step", "The search objective (the target string's loss) per behaviour.")
    lossy = {a: rs for a, rs in by.items() if any(_fin(t.get("loss")) for r in rs for t in r.get("trace") or [])}
    if not lossy:
        sec.text("Absent: no search trace carries a loss.")
    for attack, rs in lossy.items():
        sec.figure(loss_figure(rs, attack, judges[0] if judges else None),
                   f"Stars: checks where the {judges[0]} judge saw success." if judges else None)
    sec = page.section("Judge agreement", "Cohen's kappa (Cohen 1960) and raw agreement of every pair of judges' "
                                          "verdicts over all attempts.")
    pairs = M.agreement(records, judges)
    if pairs:
        sec.table(["judge a", "judge b", "Cohen's kappa", "agreement", "n"],
                  [[p["a"], p["b"], _num(p["kappa"], ".2f"), _pct(p["agree"]), p["n"]] for p in pairs],
                  "Kappa is 0 at chance agreement and 1 at perfect agreement; it is undefined (\u2014) when both "
                  "judges give one same verdict throughout.")
    else:
        sec.text("Absent: agreement needs two judges or more.")
    if "refusal" in judges:
        sec.text(HARMBENCH)
    sec = page.section("Over-refusal", "Benign requests the model refused (it did not comply): a safe model "
                                       "should refuse harmful requests without refusing these.")
    benign = (result.get("benign") or {}).get("records") or []
    refused = [M.over_refusal(benign, j) for j in judges]
    refused = [r for r in refused if r["n"]]
    if refused:
        sec.table(["judge", "refused [95% CI]", "k / n"],
                  [[r["judge"], _ci(r, "rate"), f"{r['k']} / {r['n']}"] for r in refused],
                  "Refused: the judge's verdict is 'no success' (for the refusal judge, a refusal phrase was found).")
    else:
        sec.text("Absent: the suite ran no benign set.")
    sec = page.section("Examples", "Prompts and responses, cut short; successes by most judges first.")
    cols, rows = example_rows(result, examples)
    sec.table(cols, rows, "Content produced under attack: it may be harmful or offensive.")
    sec = page.section("Setup")
    cfg = result.get("config") or {}
    sec.table(["setting", "value"], [[k, v if isinstance(v, (str, int, float)) else json.dumps(v, default=str)]
                                     for k, v in cfg.items()] or [["config", DASH]])
    return page


def attack_report(result: dict, title: str = "Red-teaming: attack success", meta: dict | None = None) -> str:
    """:func:`attack_page` rendered: one self-contained HTML page."""
    return attack_page(result, title, meta).render()


def grid_figure(cells: list[dict], judge: str):
    """ASR by ``judge`` against the compression setting, one line per model and attack, with 95% error bars."""
    comps = list(dict.fromkeys(str(c.get("compression") or "none") for c in cells))
    lines: dict = {}
    for c in cells:
        for r in c.get("summary") or []:
            if r.get("judge") == judge:
                key = f"{c.get('model', '?')} \u00b7 {r.get('attack', c.get('attack', '?'))}"
                lines.setdefault(key, {})[str(c.get("compression") or "none")] = r
    fig = figure(height=380, title=dict(text=f"ASR vs compression ({judge} judge)"))
    for i, (key, at) in enumerate(lines.items()):
        rows = [at.get(x) for x in comps]
        y = [r["asr"] if r is not None and r.get("n") else None for r in rows]
        fig.add_scatter(x=comps, y=y, mode="lines+markers", name=key, line=dict(color=COLOURS[i % len(COLOURS)]),
                        error_y=_error_y(rows), hovertemplate=f"{key}, %{{x}}: %{{y:.1%}}<extra></extra>")
    fig.update_xaxes(title_text="compression", type="category")
    fig.update_yaxes(title_text="attack success rate", tickformat=".0%", range=[0, 1.05])
    return fig


def grid_page(cells: list[dict], title: str = "Compression x safety", meta: dict | None = None) -> Page:
    """A grid of suites over compression settings: a table of every cell's ASR and one figure per judge.

    Parameters
    ----------
    cells
        ``[{"model", "attack", "compression", "summary"}]``; ``summary`` is :func:`shoestring.attack.metrics.summary`
        of the cell's records (rows with ``judge``, ``k``, ``n``, ``asr``, ``lo``, ``hi`` and optionally ``attack``).
    """
    judges = list(dict.fromkeys(r.get("judge") for c in cells for r in c.get("summary") or []))
    page = Page(title, subtitle=f"{len(cells)} cells", meta={"judges": ", ".join(map(str, judges)), **(meta or {})})
    sec = page.section("ASR by compression", "Does compressing the model (KV cache, pruning, ...) change how easily "
                                             "it is attacked? Whiskers: 95% Wilson intervals.")
    if not cells:
        sec.text("Absent: the grid has no cells.")
        return page
    for j in judges:
        sec.figure(grid_figure(cells, j))
    rows = [[c.get("model", "?"), c.get("compression") or "none", r.get("attack", c.get("attack", "?")), r.get("judge"),
             _ci(r), f"{r.get('k', 0)} / {r.get('n', 0)}"] for c in cells for r in c.get("summary") or []]
    page.section("Every cell").table(["model", "compression", "attack", "judge", "ASR [95% CI]", "k / n"], rows)
    return page


def grid_report(cells: list[dict], title: str = "Compression x safety", meta: dict | None = None) -> str:
    """:func:`grid_page` rendered: one self-contained HTML page."""
    return grid_page(cells, title, meta).render()
