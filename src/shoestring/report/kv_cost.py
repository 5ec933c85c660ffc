"""The cost part of the KV report: per policy x budget, cache tokens and bytes against the budget, peak
memory and speed, and cache bytes per layer."""

from __future__ import annotations

from .kv_result import FULL, _budget_order, _colour, _finite, _list, _policies, _same, budget_label, default_budget, nbytes, num
from .page import esc
from .style import figure

COST_COLUMNS = ["policy", "budget", "budget tokens", "cache tokens / layer (min-max)", "cache bytes", "expected bytes",
                "bytes error", "peak cache tokens", "peak memory MB", "prefill s", "prefill tok/s", "decode s",
                "decode tok/s"]


def cost_lengths(result: dict) -> list:
    """The context lengths with cost rows, shortest first (None last, for rows without a length)."""
    found = {r.get("length") for r in result.get("cost") or []}
    return sorted(v for v in found if v is not None) + ([None] if None in found else [])


def cost_rows(result: dict, length) -> list[list[str]]:
    """The formatted cost rows at one context length (full cache first, then budgets largest first, policies in
    the run's order), as :data:`COST_COLUMNS`."""
    rows = [r for r in result.get("cost") or [] if r.get("length") == length]
    order = _policies(result, rows)
    out = []
    for r in sorted(rows, key=lambda r: (_budget_order(r.get("budget")), order.index(r.get("policy")))):
        toks = [t for t in _list(r.get("cache_tokens_per_layer")) if _finite(t)]
        per_layer = [b for b in _list(r.get("cache_bytes_per_layer")) if _finite(b)]
        held = sum(per_layer) if per_layer else None
        exp = r.get("expected_bytes")
        err = r.get("bytes_error")
        if not _finite(err) and _finite(held) and _finite(exp) and exp:
            err = (held - exp) / exp
        bt = r.get("budget_tokens")
        held_toks = ("n/a" if not toks else num(toks[0]) if min(toks) == max(toks)
                     else f"{num(min(toks))}-{num(max(toks))}")
        out.append([r.get("policy"), budget_label(r.get("budget")),
                    "all" if bt is None and r.get("budget") is None else num(bt), held_toks,
                    nbytes(held), nbytes(exp), f"{err:.2%}" if _finite(err) else "n/a",
                    num(r.get("peak_cache_tokens")), num(r.get("peak_rss_mb")), num(r.get("prefill_s")),
                    num(r.get("prefill_tokens_per_s")), num(r.get("decode_s")), num(r.get("decode_tokens_per_s"))])
    return out


def cache_bytes_figure(result: dict, budget=None, length=None):
    """Cache bytes per layer for one setting (default: the largest budget below full, the longest length), one
    line per policy and the full cache dashed: flat for a uniform budget, shaped for a per-layer allocator."""
    rows = [r for r in result.get("cost") or [] if _list(r.get("cache_bytes_per_layer"))]
    budget = default_budget(result, rows) if budget is None else budget
    length = max((r.get("length") or 0 for r in rows), default=None) if length is None else length
    pick = [r for r in rows
            if r.get("length") == length and (r.get("policy") == FULL or _same(r.get("budget"), budget))]
    fig = figure(height=360, title=dict(text=f"Cache bytes per layer at {budget_label(budget)}, {num(length)} tokens"))
    for policy in _policies(result, pick):
        for r in (r for r in pick if r.get("policy") == policy):
            full = policy == FULL
            ys = [v / 2 ** 20 if _finite(v) else None for v in _list(r["cache_bytes_per_layer"])]
            toks = _list(r.get("cache_tokens_per_layer")) or [None] * len(ys)
            fig.add_scatter(x=list(range(len(ys))), y=ys, mode="lines+markers", name="full cache" if full else policy,
                            line=dict(color=_colour(result, policy), dash="dash" if full else "solid"),
                            marker=dict(size=4), customdata=toks,
                            hovertemplate=f"{esc(policy)}: layer %{{x}}, %{{y:.3f}} MiB, %{{customdata}} tokens"
                                          "<extra></extra>")
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="cache MiB", rangemode="tozero")
    return fig


# ---------------------------------------------------------------------------------------------- page
