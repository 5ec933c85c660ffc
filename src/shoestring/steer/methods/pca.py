"""PCA of paired differences: the first principal direction of ``positive[i] - negative[i]``, as repeng's
control vectors (Vogel 2024, https://github.com/vgel/repeng; after Zou et al. 2023, "Representation
Engineering", https://arxiv.org/abs/2310.01405).

The PCA is taken about the origin: repeng centres each pair on its midpoint, which turns the pair into
``±(positive - negative) / 2``, whose covariance is the uncentred second moment of the differences.
The component's sign points from negative to positive, and its length is the mean difference's projection on
it, so its scale is comparable with :class:`MeanDiff`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import DirectionMethod


@dataclass
class PCADiff(DirectionMethod):
    name = "pca_diff"

    def combine(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        diffs = (pos - neg).double()
        mean = diffs.mean(0)
        if float(diffs.norm()) == 0.0:
            return mean.float()
        _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
        pc = vh[0]
        proj = float(mean @ pc)
        if proj < 0:
            pc, proj = -pc, -proj
        return (pc * proj).float()
