"""A linear-probe direction: the weight vector of an L2 logistic regression separating the two sets,
mapped back from standardised to raw coordinates (Alain & Bengio 2016, https://arxiv.org/abs/1610.01644;
used for steering by Li et al. 2023, "Inference-Time Intervention", https://arxiv.org/abs/2306.03341).

Scaled, like :class:`PCADiff`, to the mean difference's projection on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import DirectionMethod


@dataclass
class ProbeDirection(DirectionMethod):
    l2: float = 1e-2
    paired: bool = False
    name = "probe"

    def combine(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        from ...observe.probe_fit import LogisticProbe

        X = torch.cat([pos, neg]).float()
        y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long()
        probe = LogisticProbe(l2=self.l2).fit(X, y, n_classes=2)
        w = (probe.W_[:, 1] - probe.W_[:, 0]) / probe.std_  # d logit / d x in raw units
        w = w / w.norm().clamp_min(1e-12)
        return w * ((pos.mean(0) - neg.mean(0)) @ w)

    def describe(self) -> dict:
        return {"l2": self.l2}
