"""Layer skipping at inference, as an intervention: ``with SkipLayers(model, [20, 21]): ...`` runs the model with
those decoder layers replaced by the identity (their compute really is skipped), and always restores them.

The KV cache keeps working: skipped layers simply store nothing. Layer 0 cannot be skipped, because
transformers reads the cache's length from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ShoestringError
from .importance.base import blocks_and_shape


def _identity(hidden_states, *args, **kwargs):
    return hidden_states


@dataclass
class SkipLayers:
    model: object
    layers: list[int]
    _saved: dict = field(default_factory=dict, repr=False)

    def __enter__(self):
        blocks = blocks_and_shape(self.model)[0]
        L = len(blocks)
        bad = [i for i in self.layers if not 0 <= i < L]
        if bad:
            raise ShoestringError(f"layers {bad} are outside 0..{L - 1}", "name layers of this model")
        if 0 in self.layers:
            raise ShoestringError("layer 0 cannot be skipped (transformers reads the KV cache's length from it)",
                                  "skip later layers; the least influential ones come from BlockInfluence")
        if len(set(self.layers)) >= L:
            raise ShoestringError("every layer would be skipped", "keep at least one layer")
        for i in set(self.layers):
            self._saved[i] = blocks[i].__dict__.get("forward")  # an instance-level forward, if any
            blocks[i].forward = _identity
        self._blocks = blocks
        return self

    def __exit__(self, *exc):
        for i, fwd in self._saved.items():
            if fwd is None:
                del self._blocks[i].forward
            else:
                self._blocks[i].forward = fwd
        self._saved.clear()
        return False
