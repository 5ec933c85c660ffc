"""Direction methods, one file each: mean difference (CAA), PCA of paired differences, probe weights,
ActAdd, SAE features. ``METHODS`` maps names to classes (a duplicate name raises)."""

from __future__ import annotations

from ...registry import add
from .actadd import ActAdd
from .base import DirectionMethod
from .mean_diff import MeanDiff
from .pca import PCADiff
from .probe import ProbeDirection
from .sae_feature import SAEFeature

METHODS: dict[str, type] = {}
for _cls in (MeanDiff, PCADiff, ProbeDirection, ActAdd, SAEFeature):
    add(METHODS, _cls.name, _cls, "direction method")

__all__ = ["METHODS", "DirectionMethod", "MeanDiff", "PCADiff", "ProbeDirection", "ActAdd", "SAEFeature"]
