"""Reading a ``shoestring kv bench`` result for the KV report: formatting, budgets (fractions or token
counts), policies and their colours, tasks and their metrics."""

from __future__ import annotations

import math

from .style import COLOURS

FULL = "full"
FULL_COLOUR = "#3e4c59"

MODES = {
    "query-agnostic": ("The cache was compressed before the question was seen: each policy chose what to keep "
                       "from the context alone, as it must when one compressed cache serves many questions. "
                       "This is the harder setting, and the honest one for cache reuse."),
    "query-aware": ("The question was already in the text when the cache was compressed: policies that score "
                    "tokens by the attention of the last positions (SnapKV, H2O, TOVA) could see what would be "
                    "asked. Scores are optimistic for a cache reused across questions; compare them only with "
                    "runs in the same mode."),
}


# ----------------------------------------------------------------------------------------------- helpers

def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else []


def num(v, digits: int = 3) -> str:
    """A number for a table: ``n/a`` for None / NaN, thousands separators for big values, fewer decimals
    as the value grows (0.834, 12.35, 812.3, 1,700)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def is_tokens(budget) -> bool:
    """A budget given as a token count (``--budget-tokens``: an int, or anything above 1) rather than a fraction
    of the context."""
    return budget is not None and not isinstance(budget, bool) and (isinstance(budget, int) or budget > 1)


def budget_label(budget) -> str:
    """``0.125`` -> ``12.5%``, ``256`` (tokens) -> ``256 tok``; None (the full cache) -> ``full``."""
    if budget is None:
        return "full"
    return f"{budget:,.0f} tok" if is_tokens(budget) else f"{budget * 100:g}%"


def _budget_order(budget) -> tuple:
    """Sort key: the full cache, then fractions largest first, then token budgets largest first."""
    if budget is None or not isinstance(budget, (int, float)) or budget != budget:
        return (budget is not None, 2, 0.0)
    return (True, int(is_tokens(budget)), -budget)


def nbytes(n) -> str:
    if not _finite(n):
        return "n/a"
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(n) >= size:
            return f"{n / size:.2f}\u00a0{unit}"
    return f"{int(n)}\u00a0B"


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if is_tokens(a) != is_tokens(b):
        return False
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _policies(result: dict, rows=()) -> list[str]:
    """The run's policies in its order, then any others the rows name; ``full`` first."""
    order = list(result.get("policies") or [])
    for r in rows:
        if r.get("policy") not in order:
            order.append(r.get("policy"))
    return sorted(order, key=lambda p: (p != FULL, order.index(p)))


def _colour(result: dict, policy: str) -> str:
    """One colour per policy across every figure (the full cache dark grey)."""
    if policy == FULL:
        return FULL_COLOUR
    seen = [r for key in ("summary", "scores", "curves", "cost") for r in result.get(key) or []]
    others = [p for p in _policies(result, seen) if p != FULL]
    return COLOURS[others.index(policy) % len(COLOURS)] if policy in others else COLOURS[-1]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def _tasks(result: dict) -> list[str]:
    """Tasks named in ``tasks`` and any others that have scores or summary rows, in first-seen order."""
    names = list(result.get("tasks") or {})
    for r in (result.get("summary") or []) + (result.get("scores") or []):
        if r.get("task") not in names:
            names.append(r.get("task"))
    return names


def task_info(result: dict, task: str) -> tuple[str, bool]:
    """``(metric, higher_is_better)``; a task without metadata is judged by its name (perplexity, NLL and
    loss are lower-is-better, anything else higher)."""
    info = (result.get("tasks") or {}).get(task) or {}
    metric = info.get("metric") or task
    hib = info.get("higher_is_better")
    if hib is None:
        hib = not any(w in f"{task} {metric}".lower() for w in ("perplexity", "ppl", "nll", "loss"))
    return metric, bool(hib)


def _retrieval_rows(result: dict, task: str) -> list[dict]:
    """The task's score rows that have a needle depth and a length."""
    return [r for r in result.get("scores") or [] if r.get("task") == task and _finite(r.get("depth"))
            and r.get("length") is not None]


def depth_tasks(result: dict) -> list[str]:
    """Tasks with needle depths (their score rows carry a depth): the ones with retrieval heat maps."""
    return [t for t in _tasks(result) if _retrieval_rows(result, t)]


def _lengths(result: dict) -> list[int]:
    found = {r.get("length") for key in ("scores", "curves", "cost") for r in result.get(key) or []}
    return sorted(v for v in found if v is not None)


def _budgets(result: dict, rows=()) -> list:
    """The compressed budgets (the run's list plus any the rows use): fractions largest first, then token
    counts largest first."""
    found = {b for b in list(result.get("budgets") or []) + [r.get("budget") for r in rows]
             if _finite(b) and b > 0}
    unique = []
    for b in sorted(found, key=_budget_order):
        if not any(_same(b, u) for u in unique):
            unique.append(b)
    return unique


def default_budget(result: dict, rows=()):
    """The budget shown where only one fits: the largest fraction below the full cache (50% in a 50/25/12.5
    run), else the largest token budget."""
    budgets = _budgets(result, rows)
    below = [b for b in budgets if not is_tokens(b) and b < 1.0]
    return below[0] if below else next(iter(budgets), None)


def _cache_phrase(budget) -> str:
    if budget is None:
        return "the full cache only"
    return f"a {budget:,.0f}-token cache" if is_tokens(budget) else f"a {budget_label(budget)} cache"


# ------------------------------------------------------------------------------------ quality vs budget

def _summary(result: dict, task: str) -> list[dict]:
    return [r for r in result.get("summary") or [] if r.get("task") == task]
