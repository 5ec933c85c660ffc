"""Mean difference / contrastive activation addition (CAA): ``mean(positive) - mean(negative)``.

Rimsky et al. 2024, "Steering Llama 2 via Contrastive Activation Addition", https://arxiv.org/abs/2312.06681
(pairs that differ in the behaviour); with ``paired=False`` it is the difference of class means of two
labelled sets (the "diff-in-means" of Marks & Tegmark 2023, https://arxiv.org/abs/2310.06824).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import DirectionMethod


@dataclass
class MeanDiff(DirectionMethod):
    name = "mean_diff"

    def combine(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return pos.mean(0) - neg.mean(0)
