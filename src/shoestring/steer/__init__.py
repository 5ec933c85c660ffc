"""Steering: directions (one method per file), applied during generation as context managers.

>>> from shoestring.steer import MeanDiff, Steer, generate                        # doctest: +SKIP
>>> d = MeanDiff(layers=(8,)).fit(lm, ["I love this"], ["I hate this"])         # doctest: +SKIP
>>> generate(lm, ["The movie was"], Steer(lm, d, scale=6.0), max_new_tokens=20)  # doctest: +SKIP
"""

from __future__ import annotations

from .apply import MODES, POSITIONS, Steer, clamp_feature, generate
from .direction import Direction
from .methods import METHODS, ActAdd, DirectionMethod, MeanDiff, PCADiff, ProbeDirection, SAEFeature

__all__ = ["Direction", "Steer", "clamp_feature", "generate", "MODES", "POSITIONS", "METHODS", "DirectionMethod",
           "MeanDiff", "PCADiff", "ProbeDirection", "ActAdd", "SAEFeature"]
