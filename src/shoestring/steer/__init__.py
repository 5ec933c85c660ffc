"""Steering: directions (one method per file), applied during generation as context managers.

>>> from shoestring.steer import MeanDiff, Steer, generate                        # doctest: +SKIP
>>> d = MeanDiff(layers=(8,)).fit(lm, ["I love this"], ["I hate this"])         # doctest: +SKIP
>>> generate(lm, ["The movie was"], Steer(lm, d, scale=6.0), max_new_tokens=20)  # doctest: +SKIP
"""

from __future__ import annotations

from .apply import MODES, POSITIONS, Steer, generate
from .direction import Direction
from .feature_edit import FEATURE_MODES, FeatureEdit, clamp_feature
from .interop import export_gguf, export_lm_eval, import_gguf, import_repeng
from .methods import METHODS, ActAdd, DirectionMethod, MeanDiff, PCADiff, ProbeDirection, SAEFeature

__all__ = ["Direction", "Steer", "FeatureEdit", "FEATURE_MODES", "clamp_feature", "generate", "MODES", "POSITIONS", "METHODS", "DirectionMethod",
           "MeanDiff", "PCADiff", "ProbeDirection", "ActAdd", "SAEFeature", "export_lm_eval", "export_gguf",
           "import_repeng", "import_gguf"]
