"""KV-cache policies, one per file, in a registry (``POLICIES[name]``)."""

from .base import Policy
from .entropy import Entropy
from .full import Full
from .h2o import H2O
from .key_norm import KeyNorm
from .random import Random
from .snapkv import SnapKV
from .streaming import StreamingLLM
from .tova import TOVA
from .window import Window

POLICIES = {p.name: p for p in (Full, Window, StreamingLLM, KeyNorm, Random, H2O, TOVA, SnapKV, Entropy)}

__all__ = ["Policy", "POLICIES", "Full", "Window", "StreamingLLM", "KeyNorm", "Random", "H2O", "TOVA", "SnapKV", "Entropy"]
