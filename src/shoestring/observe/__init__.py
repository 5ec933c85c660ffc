"""Observe: lenses and the attention-head census (more of issue 4 to come: probes, geometry, patching, report)."""

from .heads import HeadScores, head_census
from .lens import LensResult, logit_lens

__all__ = ["HeadScores", "LensResult", "head_census", "logit_lens"]
