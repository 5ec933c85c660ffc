"""Activation store: write activations in resumable shards, read them back fast.

Run inference once, keep a few layers' activations on disk, then train SAEs and probes from there.
"""

from .manifest import Manifest
from .reader import ActivationStore
from .stats import StatsCollector
from .writer import cache_activations

__all__ = ["ActivationStore", "Manifest", "StatsCollector", "cache_activations"]
