"""Tokenise a corpus and pack it into fixed-length contexts, streaming and deterministic.

The token stream is every document's tokens, each document framed by the separator: ``sep="eos"`` appends
EOS after each document, ``sep="bos"`` puts BOS before each, ``None`` adds nothing. Contexts are cut from
that stream in order; with ``add_bos`` each context starts with an *inserted* BOS (``doc_id`` -1,
``position`` -1) unless the stream itself starts there with a separator BOS. No stream token is lost or
repeated: dropping the inserted tokens and concatenating the contexts gives back the stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ShoestringError
from .corpus import Corpus

INSERTED = -1  # doc_id of an inserted BOS
PAD = -2  # doc_id of padding (only in the last context, when drop_last=False)


@dataclass
class Packed:
    """One context. ``index`` counts contexts from 0 in the full run (also when resumed with ``skip_contexts``)."""

    tokens: torch.Tensor  # [T] long
    doc_ids: torch.Tensor  # [T] long: Document.id of each token; -1 inserted BOS, -2 padding
    positions: torch.Tensor  # [T] long: position within its framed document (the separator counts); -1 if none
    index: int


@dataclass
class PackedBatch:
    """``batch`` contexts stacked; ``index`` is the first context's index."""

    tokens: torch.Tensor  # [batch, T] long
    doc_ids: torch.Tensor  # [batch, T] long
    positions: torch.Tensor  # [batch, T] long
    index: int


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens; the Rust backend directly when there is one (fast, no warnings)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None:
        # A padded call through the HF tokenizer (``tokenizer(texts, padding=True)``) leaves padding (and
        # truncation) switched on in the shared Rust backend; switch them off for this call, then restore.
        padding, truncation = backend.padding, backend.truncation
        backend.no_padding()
        backend.no_truncation()
        try:
            encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
            return [e.ids for e in encode(texts, add_special_tokens=False)]
        finally:
            if padding is not None:
                backend.enable_padding(**{k: v for k, v in padding.items() if k != "pad_to_multiple_of" or v is not None})
            if truncation is not None:
                backend.enable_truncation(**truncation)
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _check(tokenizer, context_length: int, add_bos: bool, sep) -> tuple[int | None, int | None]:
    if sep not in ("eos", "bos", None):
        raise ShoestringError(f"sep={sep!r} is not a separator", "pass sep='eos', 'bos' or None")
    bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
    if sep == "eos" and eos is None:
        raise ShoestringError("sep='eos' but the tokenizer has no EOS token", "pass sep='bos' or sep=None")
    if sep == "bos" and bos is None:
        raise ShoestringError("sep='bos' but the tokenizer has no BOS token", "pass sep='eos' or sep=None")
    if context_length < 2:
        raise ShoestringError(f"context_length={context_length} is too short", "pass context_length >= 2")
    return (bos if add_bos else None), eos


def _framed(corpus: Corpus, tokenizer, sep, eos, batch_docs: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Per batch of documents: framed tokens, doc ids and positions, concatenated (``[n]`` each).

    Documents never straddle two batches, so positions restart at 0 with every batch.
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    docs = iter(corpus)
    while batch := list(itertools.islice(docs, batch_docs)):
        toks, ids, pos = [], [], []
        for doc, ids_ in zip(batch, _encode(tokenizer, [d.text for d in batch])):
            if not ids_:
                continue  # an empty document adds no lone separator
            framed = [bos, *ids_] if sep == "bos" else [*ids_, eos] if sep == "eos" else list(ids_)
            toks.append(np.asarray(framed, dtype=np.int64))
            ids.append(np.full(len(framed), doc.id, dtype=np.int64))
            pos.append(np.arange(len(framed), dtype=np.int64))
        if toks:
            yield np.concatenate(toks), np.concatenate(ids), np.concatenate(pos)


def pack(corpus: Corpus, tokenizer, context_length: int, *, add_bos: bool = True, sep: str | None = "eos",
         drop_last: bool = True, skip_contexts: int = 0, batch_docs: int = 64) -> Iterator[Packed]:
    """Tokenise ``corpus`` in batches of documents and yield fixed-length contexts.

    Parameters
    ----------
    corpus
        From :func:`load_corpus` (shuffle or split it first, if wanted).
    tokenizer
        A Hugging Face tokenizer (fast ones use the Rust backend directly). No special tokens are added
        except BOS/EOS as below.
    context_length
        ``T``, the length of every context.
    add_bos
        Start every context with BOS. A tokenizer without a BOS token gets none (no error).
    sep
        Separator framing each document: ``"eos"`` after it, ``"bos"`` before it, or ``None``.
    drop_last
        Drop the final partial context; otherwise pad it (token: pad, else EOS, else 0; doc_id -2, position -1).
    skip_contexts
        Resume: skip the first ``n`` contexts (re-tokenises, builds no tensors for them); the rest are exactly
        those of a full run.
    batch_docs
        Documents tokenised per batch. Memory holds one batch's tokens.

    Yields
    ------
    Packed
        ``tokens``, ``doc_ids``, ``positions``: ``[T]`` long each; ``index`` the context number.
    """
    bos, eos = _check(tokenizer, context_length, add_bos, sep)  # now, not at the first next()
    return _contexts(corpus, tokenizer, context_length, bos, eos, sep, drop_last, skip_contexts, batch_docs)


def _contexts(corpus, tokenizer, T, bos, eos, sep, drop_last, skip_contexts, batch_docs) -> Iterator[Packed]:
    pad = next((t for t in (getattr(tokenizer, "pad_token_id", None), eos) if t is not None), 0)
    toks = ids = pos = np.zeros(0, dtype=np.int64)  # the unconsumed stream, [n] each
    index = 0
    stream = _framed(corpus, tokenizer, sep, eos, max(1, batch_docs))
    while True:
        more = next(stream, None)
        exhausted = more is None
        if not exhausted:
            toks, ids, pos = (np.concatenate([a, b]) for a, b in zip((toks, ids, pos), more))
        start, n = 0, len(toks)
        while start < n:
            # a context that begins on a separator BOS already starts with BOS
            insert = bos is not None and not (sep == "bos" and pos[start] == 0)
            take = T - 1 if insert else T
            if n - start < take and (not exhausted or drop_last):
                break
            if index >= skip_contexts:
                yield _context(toks[start:start + take], ids[start:start + take], pos[start:start + take],
                               bos if insert else None, pad, T, index)
            index += 1
            start += take
        if exhausted:
            return
        toks, ids, pos = toks[start:], ids[start:], pos[start:]


def _context(t, d, p, bos, pad, T, index) -> Packed:
    lead = 0 if bos is None else 1
    tokens = np.full(T, pad, dtype=np.int64)
    doc_ids = np.full(T, PAD, dtype=np.int64)
    positions = np.full(T, -1, dtype=np.int64)
    if bos is not None:
        tokens[0], doc_ids[0] = bos, INSERTED
    end = lead + len(t)
    tokens[lead:end], doc_ids[lead:end], positions[lead:end] = t, d, p
    return Packed(torch.from_numpy(tokens), torch.from_numpy(doc_ids), torch.from_numpy(positions), index)


def pack_batches(corpus: Corpus, tokenizer, context_length: int, batch_size: int, *, drop_last: bool = True,
                 **pack_kwargs) -> Iterator[PackedBatch]:
    """:func:`pack`, stacked ``batch_size`` contexts at a time.

    ``drop_last`` applies to the last partial context and the last partial batch. To resume after ``k``
    batches pass ``skip_contexts=k * batch_size``. Other keywords go to :func:`pack`.
    """
    if batch_size < 1:
        raise ShoestringError(f"batch_size={batch_size} is too small", "pass batch_size >= 1")
    contexts = pack(corpus, tokenizer, context_length, drop_last=drop_last, **pack_kwargs)
    while group := list(itertools.islice(contexts, batch_size)):
        if len(group) < batch_size and drop_last:
            return
        yield PackedBatch(torch.stack([c.tokens for c in group]), torch.stack([c.doc_ids for c in group]),
                          torch.stack([c.positions for c in group]), group[0].index)


def take_contexts(corpus: Corpus, tokenizer, context_length: int, n: int, skip_contexts: int = 0) -> torch.Tensor | None:
    """The first ``n`` packed contexts ``[n, T]`` after ``skip_contexts`` (e.g. those a store or a training
    stream used: held-out text), or ``None`` when the corpus has none left."""
    rows = [c.tokens for _, c in zip(range(n), pack(corpus, tokenizer, context_length, skip_contexts=skip_contexts))]
    return torch.stack(rows) if rows else None
