"""Observe: logit lens, attention-head census, activation patching, direct logit attribution, linear probes,
neurons and directions, geometry, and the tuned lens."""

from .attribution import DLAResult, direct_logit_attribution
from .geometry import PCA, cosine_matrix, geometry_summary, kmeans, pca, silhouette
from .heads import HeadScores, attention_pattern, head_census
from .labelled import LabelledSet, load_labelled
from .lens import LensResult, logit_lens
from .neurons import direct_logit_effect, neuron_direction, token_activations, top_activating
from .patching import PatchResult, patch_heads, patch_one, patch_residual
from .tuned_lens import TunedLens
from .tuned_lens_fit import fit_tuned_lens, fit_tuned_lens_from_store, lens_kl
from .probes import LogisticProbe, ProbeReport, RidgeProbe, collect, probe_layers, probe_texts

__all__ = ["PCA", "cosine_matrix", "direct_logit_effect", "kmeans", "neuron_direction", "pca", "silhouette",
           "top_activating", "DLAResult", "HeadScores", "LabelledSet", "LensResult", "LogisticProbe", "PatchResult", "ProbeReport",
           "RidgeProbe", "collect", "direct_logit_attribution", "head_census", "load_labelled", "logit_lens",
           "patch_heads", "patch_one", "patch_residual", "probe_layers", "probe_texts", "TunedLens", "fit_tuned_lens",
           "fit_tuned_lens_from_store", "lens_kl", "attention_pattern", "geometry_summary", "token_activations"]
