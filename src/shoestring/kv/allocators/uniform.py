"""Every layer keeps the same number of tokens (the default)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Allocator


@dataclass
class Uniform(Allocator):
    name = "uniform"

    def weights(self, n_layers, info):
        return [1.0] * n_layers
