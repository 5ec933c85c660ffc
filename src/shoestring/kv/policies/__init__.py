"""KV-cache policies, one per file, in a registry (``POLICIES[name]``)."""

from .base import Policy
from .full import Full
from .key_norm import KeyNorm
from .random import Random
from .streaming import StreamingLLM
from .window import Window

POLICIES = {p.name: p for p in (Full, Window, StreamingLLM, KeyNorm, Random)}

__all__ = ["Policy", "POLICIES", "Full", "Window", "StreamingLLM", "KeyNorm", "Random"]
