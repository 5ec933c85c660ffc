"""The base of every direction method: collect activations for two sets of texts, combine them.

A method is a dataclass whose fields are its hyper-parameters, with one method to override,
:meth:`DirectionMethod.combine` (``pos [n, d], neg [m, d] -> [d]``); the base owns collecting activations
(one forward pass per batch for all layers, :func:`shoestring.observe.probes.collect`) and the checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ShoestringError
from ..direction import Direction


@dataclass
class DirectionMethod:
    """``layers``: where to fit; ``position``: ``"last"`` token or ``"mean"`` over tokens; ``paired``: the
    two sets are contrastive pairs (same length, ``positive[i]`` against ``negative[i]``)."""

    layers: tuple[int, ...] = (15,)
    position: str = "last"
    paired: bool = True
    hook: str = "blocks.{layer}.hook_resid_post"
    batch_size: int = 16
    name = "base"

    def combine(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check(self, positive, negative) -> tuple[list[str], list[str]]:
        positive, negative = [positive] if isinstance(positive, str) else list(positive), \
            [negative] if isinstance(negative, str) else list(negative)
        if not positive or not negative:
            raise ShoestringError(f"a contrastive set is empty ({len(positive)} positive, {len(negative)} negative texts)",
                                  "give at least one text on each side")
        if self.paired and len(positive) != len(negative):
            raise ShoestringError(f"contrastive pairs of unequal length: {len(positive)} positive vs {len(negative)} negative",
                                  "give one negative text per positive text (or paired=False for unpaired sets)")
        return positive, negative

    def fit(self, lm, positive, negative) -> Direction:
        """The direction at every layer of ``self.layers`` (``positive`` minus ``negative``)."""
        positive, negative = self.check(positive, negative)
        hooks = [self.hook.format(layer=layer) for layer in self.layers]
        for h in hooks:
            lm.resolve(h)  # unknown hook / layer out of range: the usual one-line errors
        pos = _collect(lm, positive, hooks, self)
        neg = _collect(lm, negative, hooks, self)
        vectors = {layer: self.combine(pos[h], neg[h]).float() for layer, h in zip(self.layers, hooks)}
        return Direction(vectors, self.name, self.hook, getattr(lm, "name", ""),
                         {"n_positive": len(positive), "n_negative": len(negative), "position": self.position,
                          **self.describe()})

    def describe(self) -> dict:
        return {}


def _collect(lm, texts, hooks, method) -> dict[str, torch.Tensor]:
    """``{hook: [n, d]}``: every hook from the same forward passes."""
    from ...observe.probes import collect

    res = collect(lm, texts, hook=list(hooks), position=method.position, batch_size=method.batch_size)
    specs = {h: lm.resolve(h)[0] for h in hooks}
    return {h: res[spec.layer] if spec.layer in res else res[spec.name] for h, spec in specs.items()}
