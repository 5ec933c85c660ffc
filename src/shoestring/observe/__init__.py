"""Observe: logit lens, attention-head census, activation patching, direct logit attribution (probes,
geometry, the tuned lens and the report are still to come)."""

from .attribution import DLAResult, direct_logit_attribution
from .heads import HeadScores, head_census
from .lens import LensResult, logit_lens
from .patching import PatchResult, patch_heads, patch_one, patch_residual

__all__ = ["DLAResult", "HeadScores", "LensResult", "PatchResult", "direct_logit_attribution", "head_census",
           "logit_lens", "patch_heads", "patch_one", "patch_residual"]
