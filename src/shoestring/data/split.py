"""Train/validation split by document, stable when documents are added."""

from __future__ import annotations

from ..errors import ShoestringError
from .corpus import Corpus, stable_hash


def split(corpus: Corpus, val_fraction: float = 0.1, seed: int = 0) -> tuple[Corpus, Corpus]:
    """Split ``corpus`` into ``(train, val)`` by document.

    A document goes to val when a 64-bit hash of ``(seed, document.source)`` falls below ``val_fraction``;
    the source names the document itself (path, row, chapter), so adding or removing other documents
    never moves one across the split. The val share is ``val_fraction`` in expectation, not exactly.

    Examples
    --------
    >>> train, val = split(load_corpus("stdlib-prose"), val_fraction=0.2, seed=0)  # doctest: +SKIP
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ShoestringError(f"val_fraction={val_fraction} is outside [0, 1]", "pass a fraction such as 0.1")
    cut = int(val_fraction * 2**64)

    def in_val(doc) -> bool:
        return stable_hash("split", seed, doc.source) < cut

    train = corpus.filter(lambda d: not in_val(d), name=f"{corpus.name}[train]")
    val = corpus.filter(in_val, name=f"{corpus.name}[val]")
    return train, val
