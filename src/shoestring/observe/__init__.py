"""Observe: logit lens, attention-head census, activation patching, direct logit attribution linear probes
(geometry, the tuned lens and the report are still to come)."""

from .attribution import DLAResult, direct_logit_attribution
from .heads import HeadScores, head_census
from .labelled import LabelledSet, load_labelled
from .lens import LensResult, logit_lens
from .patching import PatchResult, patch_heads, patch_one, patch_residual
from .probes import LogisticProbe, ProbeReport, RidgeProbe, collect, probe_layers, probe_texts

__all__ = ["DLAResult", "HeadScores", "LabelledSet", "LensResult", "LogisticProbe", "PatchResult", "ProbeReport",
           "RidgeProbe", "collect", "direct_logit_attribution", "head_census", "load_labelled", "logit_lens",
           "patch_heads", "patch_one", "patch_residual", "probe_layers", "probe_texts"]
