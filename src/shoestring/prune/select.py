"""From importance scores to a pruning plan: the same share removed in every layer (uniform, so a plain config
can express the result) or the lowest scores model-wide (global, each layer keeping at least one)."""

from __future__ import annotations

import torch

from ..errors import ShoestringError
from .plan import PruningPlan, model_shape


def _check_ratio(ratio: float, what: str) -> None:
    if not 0.0 <= ratio < 1.0:
        raise ShoestringError(f"{what} ratio {ratio} is outside [0, 1)", f"remove a share such as 0.25 of the {what}")


def _uniform(scores: dict, ratio: float) -> dict:
    out = {}
    for layer, s in scores.items():
        keep = max(1, round(len(s) * (1 - ratio)))
        out[int(layer)] = sorted(torch.topk(torch.as_tensor(s, dtype=torch.float), keep).indices.tolist())
    return out


def _global(scores: dict, ratio: float) -> dict:
    flat = torch.cat([torch.as_tensor(s, dtype=torch.float) / torch.as_tensor(s, dtype=torch.float).mean()
                      for s in scores.values()])  # each layer's scores relative to its mean
    cut = round(len(flat) * ratio)
    threshold = flat.sort().values[cut - 1] if cut else -float("inf")
    out = {}
    for layer, s in scores.items():
        s = torch.as_tensor(s, dtype=torch.float)
        keep = (s / s.mean() > threshold).nonzero().flatten().tolist() or [int(s.argmax())]
        out[int(layer)] = keep
    return out


def plan_from_scores(model, scores: dict, head_ratio: float = 0.0, channel_ratio: float = 0.0,
                     uniform: bool = True, meta: dict | None = None) -> PruningPlan:
    """Remove ``head_ratio`` of the key-value groups and ``channel_ratio`` of the MLP channels, by score."""
    _check_ratio(head_ratio, "head")
    _check_ratio(channel_ratio, "channel")
    if head_ratio == 0 and channel_ratio == 0:
        raise ShoestringError("both ratios are 0: nothing would be pruned", "give --heads and/or --channels above 0")
    for kind, ratio, flag in (("kv_groups", head_ratio, "--heads"), ("channels", channel_ratio, "--channels")):
        if ratio and not scores.get(kind):
            raise ShoestringError(f"the criterion gave no {kind.replace('_', ' ')} scores, so a {flag} ratio cannot apply",
                                  f"use {flag} 0, or a criterion that scores them")
    pick = _uniform if uniform else _global
    plan = PruningPlan(model=model_shape(model.config), meta={"head_ratio": head_ratio, "channel_ratio": channel_ratio,
                                                              "uniform": uniform, **(meta or {})})
    if head_ratio:
        plan.kv_groups = pick(scores["kv_groups"], head_ratio)
        for layer, keep in plan.kv_groups.items():
            if len(keep) == len(scores["kv_groups"][layer]) and uniform:
                raise ShoestringError(f"a head ratio of {head_ratio} removes no key-value group of {len(keep)}",
                                      f"use a ratio of at least {1 / len(keep):.2g}")
    if channel_ratio:
        plan.channels = pick(scores["channels"], channel_ratio)
    return plan.check(model.config)


def contrast_scores(task: dict, other: dict, weight: float = 1.0) -> dict:
    """Task-specific importance: per layer, ``task / mean|task| - weight * other / mean|other|``, so structures
    the task needs and the other domain does not score highest (e.g. task = code, other = prose)."""
    out = {}
    for kind in ("kv_groups", "channels"):
        out[kind] = {}
        for layer, s in task[kind].items():
            t = torch.as_tensor(s, dtype=torch.float)
            o = torch.as_tensor(other[kind][layer], dtype=torch.float)
            out[kind][layer] = t / t.abs().mean().clamp_min(1e-12) - weight * o / o.abs().mean().clamp_min(1e-12)
    return out
