"""Importance criteria, one small dataclass per file, each with one method ``score(model, batches)`` returning
``{"kv_groups": {layer: [G]}, "channels": {layer: [I]}}`` (higher = more important to keep)."""

from .activation import Activation
from .magnitude import Magnitude
from .taylor import Taylor
from .wanda import Wanda

CRITERIA = {"magnitude": Magnitude, "wanda": Wanda, "taylor": Taylor, "activation": Activation}

__all__ = ["CRITERIA", "Activation", "Magnitude", "Taylor", "Wanda"]
