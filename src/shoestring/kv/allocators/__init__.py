"""Budget allocators across layers, one per file, in a registry (``ALLOCATORS[name]``)."""

from .base import Allocator
from .entropy import EntropyAllocator, row_entropy
from .pyramid import Pyramid
from .uniform import Uniform

ALLOCATORS = {a.name: a for a in (Uniform, Pyramid, EntropyAllocator)}

__all__ = ["Allocator", "ALLOCATORS", "Uniform", "Pyramid", "EntropyAllocator", "row_entropy"]
