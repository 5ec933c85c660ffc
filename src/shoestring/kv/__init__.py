"""Compress memory at inference: KV-cache policies (one per file) run through transformers' public Cache API."""

from .policies import POLICIES, Full, KeyNorm, Policy, Random, StreamingLLM, Window
from .session import KVSession

__all__ = ["KVSession", "POLICIES", "Policy", "Full", "Window", "StreamingLLM", "KeyNorm", "Random"]
