"""Compress memory at inference: KV-cache policies (one per file) run through transformers' public Cache API."""

from .policies import H2O, POLICIES, TOVA, Full, KeyNorm, Policy, Random, SnapKV, StreamingLLM, Window
from .session import KVSession

__all__ = ["KVSession", "POLICIES", "Policy", "Full", "Window", "StreamingLLM", "KeyNorm", "Random", "H2O", "TOVA",
           "SnapKV"]
