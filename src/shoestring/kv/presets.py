"""Policies by name. A policy is a token scorer plus a budget allocator across layers; ``"scorer+allocator"``
composes any two (``"h2o+pyramid"``), and two presets name the published combinations:

- ``pyramidkv``: SnapKV scoring with pyramid-shaped layer budgets (Cai et al. 2024,
  https://arxiv.org/abs/2406.02069);
- ``entropy``: entropy-weighted attention scoring with entropy-based layer budgets (see
  :mod:`shoestring.kv.policies.entropy` and :mod:`shoestring.kv.allocators.entropy`).
"""

from __future__ import annotations

from ..errors import ShoestringError, nearest
from .allocators import ALLOCATORS, Allocator, EntropyAllocator, Pyramid, Uniform
from .policies import POLICIES, Entropy, Policy, Random, SnapKV

PRESETS = {"pyramidkv": lambda: (SnapKV(), Pyramid()), "entropy": lambda: (Entropy(), EntropyAllocator())}
DEFAULT_GRID = ["window", "streaming", "h2o", "tova", "snapkv", "pyramidkv", "key_norm", "random", "entropy"]


def _hint(name, choices) -> str:
    close = nearest(name, choices)
    return f" (did you mean {close[0]}?)" if close else ""


def names() -> list[str]:
    return sorted(set(POLICIES) | set(PRESETS))


def make_policy(name: str, seed: int = 0, window: int | None = None) -> tuple[Policy, Allocator]:
    """``(scorer, allocator)`` for a policy name (a registered policy, a preset, or ``scorer+allocator``);
    ``window`` overrides the observation window of the policies that have one (SnapKV, entropy)."""
    policy, allocator = _make(name, seed)
    if window is not None and hasattr(policy, "window"):
        policy.window = int(window)
    return policy, allocator


def _make(name: str, seed: int) -> tuple[Policy, Allocator]:
    scorer, _, alloc = name.partition("+")
    if scorer in PRESETS and not alloc:
        return PRESETS[scorer]()
    if scorer not in POLICIES:
        raise ShoestringError(f"unknown KV policy '{scorer}'", f"use one of {', '.join(names())} (or scorer+allocator, "
                              f"allocators: {', '.join(ALLOCATORS)})" + _hint(scorer, names()))
    if alloc and alloc not in ALLOCATORS:
        raise ShoestringError(f"unknown budget allocator '{alloc}'", f"use one of {', '.join(ALLOCATORS)}" + _hint(alloc, ALLOCATORS))
    policy = POLICIES[scorer](seed=seed) if POLICIES[scorer] is Random else POLICIES[scorer]()
    return policy, (ALLOCATORS[alloc]() if alloc else Uniform())
