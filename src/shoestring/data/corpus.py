"""Documents and corpora: a re-iterable, deterministic stream of :class:`Document`.

A :class:`Corpus` never holds its texts (except :meth:`Corpus.shuffled` without a buffer): iterating it
reads the source again, in the same order, every time.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One document.

    Parameters
    ----------
    id
        Its index in the corpus as loaded (0, 1, 2, ...); kept through :func:`split` and :meth:`Corpus.shuffled`.
    text
        The text.
    source
        Where it came from, unique within a corpus and independent of other documents: a path, ``path:line``,
        ``path#row``, or ``builtin:key``. Splits and exact shuffles hash it, so adding documents moves none.
    """

    id: int
    text: str
    source: str


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that is the same on every machine and Python version (unlike ``hash``)."""
    digest = hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class Corpus:
    """A named, re-iterable stream of documents.

    Parameters
    ----------
    name
        What it is called in messages (the spec it was loaded from).
    make
        Returns a fresh iterator over the documents; called once per iteration.

    Examples
    --------
    >>> corpus = load_corpus("stdlib-prose", limit_docs=3)  # doctest: +SKIP
    >>> [d.source for d in corpus]  # doctest: +SKIP
    """

    name: str
    make: Callable[[], Iterator[Document]] = field(repr=False)
    _len: int | None = field(default=None, repr=False, compare=False)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.make())

    def __len__(self) -> int:
        """The number of documents (the first call reads the whole source once)."""
        if self._len is None:
            self._len = sum(1 for _ in self)
        return self._len

    def texts(self) -> Iterator[str]:
        return (d.text for d in self)

    def take(self, n: int) -> Corpus:
        """The first ``n`` documents."""
        return Corpus(f"{self.name}[:{n}]", lambda: itertools.islice(iter(self), n))

    def filter(self, keep: Callable[[Document], bool], name: str | None = None) -> Corpus:
        """The documents for which ``keep`` is true (ids unchanged)."""
        return Corpus(name or f"{self.name}[filtered]", lambda: (d for d in self if keep(d)))

    def shuffled(self, seed: int = 0, buffer_size: int | None = None) -> Corpus:
        """The documents in a deterministic random order (ids unchanged).

        Parameters
        ----------
        seed
            Same seed, same order.
        buffer_size
            ``None`` (default): an exact shuffle, ordering by a hash of ``(seed, source)``. It holds every
            document in memory once per iteration; existing documents keep their relative order when documents
            are added. An integer: a streaming buffered shuffle (as ``tf.data``), holding ``buffer_size``
            documents; use it for corpora larger than memory (the order is only locally random).
        """
        if buffer_size is None:
            return Corpus(f"{self.name}[shuffled {seed}]",
                          lambda: iter(sorted(self, key=lambda d: stable_hash("shuffle", seed, d.source))))
        return Corpus(f"{self.name}[shuffled {seed}, buffer {buffer_size}]",
                      lambda: _buffered_shuffle(iter(self), seed, max(1, buffer_size)))


def _buffered_shuffle(docs: Iterator[Document], seed: int, size: int) -> Iterator[Document]:
    rng = random.Random(seed)
    buf: list[Document] = []
    for doc in docs:
        if len(buf) < size:
            buf.append(doc)
            continue
        i = rng.randrange(size)
        yield buf[i]
        buf[i] = doc
    rng.shuffle(buf)
    yield from buf


def numbered(name: str, items: Callable[[], Iterable[tuple[str, str]]], limit_docs: int | None = None) -> Corpus:
    """A corpus from a function yielding ``(source, text)`` pairs; ids are their order."""

    def make() -> Iterator[Document]:
        docs = (Document(i, text, source) for i, (source, text) in enumerate(items()))
        return itertools.islice(docs, limit_docs) if limit_docs is not None else docs

    return Corpus(name, make)
