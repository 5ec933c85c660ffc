"""Importance criteria, one small dataclass per file, each with one method ``score(model, batches)`` returning
``{"kv_groups": {layer: [G]}, "channels": {layer: [I]}}`` (higher = more important to keep); whole layers:
:class:`BlockInfluence` returns ``{"layers": [L]}``."""

from .ablation import Ablation
from .attention_entropy import AttentionEntropy
from .activation import Activation
from .block_influence import BlockInfluence, layers_to_drop
from .magnitude import Magnitude
from .taylor import Taylor
from .wanda import Wanda

CRITERIA = {"magnitude": Magnitude, "wanda": Wanda, "taylor": Taylor, "activation": Activation, "ablation": Ablation,
            "entropy": AttentionEntropy}

__all__ = ["CRITERIA", "Ablation", "AttentionEntropy", "Activation", "BlockInfluence", "Magnitude", "Taylor", "Wanda", "layers_to_drop"]
