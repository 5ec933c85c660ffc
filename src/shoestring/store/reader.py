"""Read an activation store: shuffled mini-batches across shards with prefetching, or random access.

>>> store = ActivationStore("store/")  # doctest: +SKIP
>>> for batch in store.batches("blocks.5.hook_resid_post", batch_size=4096):  # doctest: +SKIP
...     ...  # batch: torch.Tensor [4096, 576] float16
>>> store.get("blocks.5.hook_resid_post", [0, 17, 123456])  # rows by global token index  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from safetensors import safe_open

from ..errors import ShoestringError, nearest
from ..safetensors_header import read_header
from .manifest import Manifest


class ActivationStore:
    """A finished (or, with ``allow_partial``, an interrupted) store written by ``shoestring cache``."""

    def __init__(self, path, allow_partial: bool = False):
        self.path = Path(path)
        self.manifest = Manifest.load(self.path)
        m = self.manifest
        if m.status != "done" and not allow_partial:
            raise ShoestringError(
                f"the store at {self.path} is incomplete ({m.n_tokens:,} of {m.target_tokens:,} tokens)",
                "rerun the same `shoestring cache` command to resume it, or pass allow_partial=True",
            )
        self.starts = np.cumsum([0] + [s.n_tokens for s in m.shards])  # global index of each shard's first token
        self._meta_cache: dict[str, np.ndarray] = {}
        self._headers: dict[int, tuple[int, dict]] = {}

    # -- facts --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def hooks(self) -> list[str]:
        return list(self.manifest.hooks)

    def width(self, hook: str) -> int:
        return self.manifest.widths[self._hook(hook)]

    def _hook(self, hook: str) -> str:
        if hook not in self.manifest.widths:
            hint = nearest(hook, self.manifest.widths)
            raise ShoestringError(f"the store holds no '{hook}'", f"it holds {', '.join(self.manifest.hooks)}" + (f"; did you mean {hint[0]}?" if hint else ""))
        if self.manifest.stats_only:
            raise ShoestringError(f"the store at {self.path} keeps statistics only", "cache again without --stats-only to read activations")
        return hook

    def _file(self, i: int) -> str:
        return str(self.path / self.manifest.shards[i].file)

    def _load(self, i: int, key: str) -> np.ndarray:
        return np.array(self._mmap(i, key))

    def _mmap(self, i: int, key: str) -> np.ndarray:
        """A read-only memory map of one tensor of shard ``i`` (no copy; pages come from disk on use)."""
        if i not in self._headers:
            self._headers[i] = _header(self._file(i))
        base, entries = self._headers[i]
        dtype, shape, start, end = entries[key]
        if end == start:
            return np.empty(shape, dtype=dtype)
        return np.memmap(self._file(i), dtype=dtype, mode="r", offset=base + start, shape=tuple(shape))

    def _meta(self, key: str) -> np.ndarray:
        if key not in self._meta_cache:
            parts = [self._load(i, key) for i in range(len(self.manifest.shards))]
            self._meta_cache[key] = np.concatenate(parts) if parts else np.empty(0, np.int32)
        return self._meta_cache[key]

    def tokens(self) -> np.ndarray:
        """Token id of every cached position, ``[n_tokens]``."""
        return self._meta("tokens")

    def doc_ids(self) -> np.ndarray:
        return self._meta("doc_ids")

    def positions(self) -> np.ndarray:
        return self._meta("positions")

    def norms(self, hook: str) -> np.ndarray:
        """Per-token L2 norm of ``hook`` (kept also by ``--stats-only`` stores)."""
        if hook not in self.manifest.widths:
            raise ShoestringError(f"the store holds no '{hook}'", f"it holds {', '.join(self.manifest.hooks)}")
        return self._meta(f"norm:{hook}")

    # -- random access ------------------------------------------------------------------------
    def get(self, hook: str, index: int | Sequence[int] | np.ndarray) -> torch.Tensor:
        """Rows ``[len(index), width]`` (or ``[width]`` for an int) by global token index."""
        key = f"act:{self._hook(hook)}"
        raw = np.asarray(index)
        if raw.size and raw.dtype.kind not in "iu":
            raise ShoestringError(f"token indices must be integers, not {raw.dtype}", "pass ints, a list of ints or an int array")
        idx = np.atleast_1d(raw.astype(np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ShoestringError(f"token index out of range (the store holds {len(self):,} tokens)", f"use 0 to {len(self) - 1}")
        shard = np.searchsorted(self.starts, idx, side="right") - 1
        out = np.empty((idx.size, self.width(hook)), dtype=self._dtype())
        for s in np.unique(shard):
            sel = np.nonzero(shard == s)[0]
            out[sel] = self._mmap(int(s), key)[idx[sel] - self.starts[s]]
        t = torch.from_numpy(out)
        return t[0] if np.isscalar(index) or np.ndim(index) == 0 else t

    def _dtype(self):
        return np.float16 if self.manifest.dtype == "float16" else np.float32

    # -- shuffled batches ---------------------------------------------------------------------
    def _keep(self, i: int, skip_bos: bool, skip_special: bool) -> np.ndarray | None:
        """Rows to keep. ``skip_bos`` drops the BOS that starts a context (marked by the packer with
        document id -1, or sitting at position 0), not every token that shares its id (GPT-2 style
        tokenizers use one id for BOS and EOS); ``skip_special`` drops every special token."""
        if not (skip_bos or skip_special):
            return None
        tokens = self._load(i, "tokens")
        drop = np.zeros(len(tokens), dtype=bool)
        if skip_special and self.manifest.meta.get("special_ids"):
            drop |= np.isin(tokens, self.manifest.meta["special_ids"])
        bos = self.manifest.meta.get("bos_token_id")
        if skip_bos and bos is not None:
            start = (self._load(i, "doc_ids") == -1) | (self._load(i, "positions") <= 0)
            drop |= (tokens == bos) & start
        return ~drop

    def batches(
        self,
        hook: str,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        epochs: int = 1,
        skip_bos: bool = False,
        skip_special: bool = False,
        mix_shards: int = 2,
        prefetch: int = 2,
        drop_last: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Mini-batches ``[batch_size, width]`` (the last one may be smaller unless ``drop_last``).

        Shuffling permutes the shard order each epoch, pools ``mix_shards`` shards at a time and
        permutes their rows; a background thread loads the next pool while you train.
        """
        key = f"act:{self._hook(hook)}"
        if batch_size < 1:
            raise ShoestringError(f"batch size {batch_size} is not positive", "use a batch size of 1 or more")
        if mix_shards < 1 or epochs < 1:
            raise ShoestringError(f"mix_shards={mix_shards}, epochs={epochs}", "use mix_shards >= 1 and epochs >= 1")

        def pools():
            rng = np.random.default_rng(seed)
            n = len(self.manifest.shards)
            width = self.width(hook)
            for _ in range(epochs):
                order = rng.permutation(n) if shuffle else np.arange(n)
                for a in range(0, n, mix_shards):
                    for i in order[a : a + 2 * mix_shards]:  # this group and the next: reads overlap the scatter
                        _willneed(self._mmap(int(i), key))
                    parts = []
                    for i in order[a : a + mix_shards]:
                        keep = self._keep(int(i), skip_bos, skip_special)
                        parts.append((self._mmap(int(i), key), None if keep is None else np.nonzero(keep)[0]))
                    total = sum(len(m) if k is None else len(k) for m, k in parts)
                    pool = np.empty((total, width), dtype=self._dtype())
                    # Read each shard front to back (sequential IO) and scatter its rows to random
                    # places of the pool: one pass over the data, shuffled as it lands.
                    dest = rng.permutation(total) if shuffle else np.arange(total)
                    at = 0
                    for mm, keep in parts:
                        n_rows = len(mm) if keep is None else len(keep)
                        _scatter(pool, dest[at : at + n_rows], mm, keep)
                        at += n_rows
                    yield pool

        carry = None
        for pool in _prefetched(pools(), prefetch):
            if carry is not None and len(carry):
                pool = np.concatenate([carry, pool])
            full = len(pool) - len(pool) % batch_size
            for a in range(0, full, batch_size):
                yield torch.from_numpy(pool[a : a + batch_size])
            carry = pool[full:]
        if carry is not None and len(carry) and not drop_last:
            yield torch.from_numpy(carry)

    # -- statistics ---------------------------------------------------------------------------
    def stats(self):
        """The running statistics saved with the store (``--stats-only`` or ``--topk``)."""
        from .stats import StatsCollector

        m = self.manifest
        if not (m.stats_only or m.topk):
            raise ShoestringError(f"the store at {self.path} kept no statistics", "cache with --topk K or --stats-only")
        dirs = {h: torch.zeros(*shape) for h, shape in m.directions.items()}  # only their count matters here
        return StatsCollector.open(self.path, m.widths, topk=m.topk, upto_context=m.n_contexts, directions=dirs)

    def top_contexts(self, hook: str, unit: int, window: int = 8) -> list[dict]:
        """The top-k tokens of ``unit`` (a neuron / column, or a direction's row): value, token index,
        and the token ids of ``window`` tokens before it up to it (decode them with the tokenizer)."""
        top = self.stats().top.get(hook)
        if top is None:
            raise ShoestringError(f"no top-k statistics for '{hook}'", f"cache with --topk K; hooks: {self.hooks}")
        if not 0 <= unit < top.values.shape[0]:
            raise ShoestringError(f"unit {unit} is out of range", f"{hook} has {top.values.shape[0]} units: 0 to {top.values.shape[0] - 1}")
        tokens, docs = self.tokens(), self.doc_ids()
        out = []
        for value, index in zip(top.values[unit].tolist(), top.index[unit].tolist()):
            if index < 0:
                continue
            start = max(0, index - window)
            ctx_start = (index // self.manifest.context_length) * self.manifest.context_length
            start = max(start, ctx_start)  # stay inside the context the model saw
            out.append({"value": value, "token_index": index, "doc_id": int(docs[index]),
                        "tokens": tokens[start : index + 1].tolist()})
        return out

    # -- integrity ----------------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Recompute every shard's checksum; returns the files that do not match (empty: all good)."""
        bad = []
        for i, shard in enumerate(self.manifest.shards):
            h = hashlib.blake2b(digest_size=16)
            with safe_open(self._file(i), framework="numpy") as f:
                for key in sorted(f.keys()):
                    h.update(key.encode())
                    h.update(np.ascontiguousarray(f.get_tensor(key)).view(np.uint8).data)
            if h.hexdigest() != shard.checksum:
                bad.append(shard.file)
        return bad


def _willneed(mm: np.ndarray) -> None:
    """Ask the kernel to read a memory-mapped tensor ahead (sequential batches only; a random ``get``
    must not pull whole tensors in)."""
    m = getattr(mm, "_mmap", None)
    if m is not None and hasattr(m, "madvise") and hasattr(mmap, "MADV_WILLNEED"):
        m.madvise(mmap.MADV_WILLNEED)


_POOL: ThreadPoolExecutor | None = None
_CHUNK = 1 << 15  # rows per scatter task


def _scatter(pool: np.ndarray, dest: np.ndarray, src: np.ndarray, keep: np.ndarray | None) -> None:
    """``pool[dest] = src[keep]`` in row chunks on a thread pool (numpy releases the GIL while copying)."""
    global _POOL
    n = len(dest)
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="store-read")

    def work(a: int) -> None:
        b = min(a + _CHUNK, n)
        pool[dest[a:b]] = src[a:b] if keep is None else src[keep[a:b]]

    for f in [_POOL.submit(work, a) for a in range(0, n, _CHUNK)]:
        f.result()


def _prefetched(iterator, depth: int):
    """Run ``iterator`` in a background thread, ``depth`` items ahead. Leaving the loop early (``break``,
    ``islice``, an exception) stops the thread and frees what it holds."""
    if depth <= 0:
        yield from iterator
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in iterator:
                if not put(item):
                    return
        except BaseException as err:  # surfaced in the consumer
            put(err)
            return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None and stop.is_set():
                close()
        put(done)

    thread = threading.Thread(target=work, daemon=True, name="store-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while True:  # drop what was prefetched
            try:
                q.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=5)


_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64,
           "U8": np.uint8, "I8": np.int8, "BOOL": np.bool_}


def _header(path: str) -> tuple[int, dict]:
    """Byte offset of the data and ``{key: (dtype, shape, start, end)}`` from a safetensors header."""
    base, header = read_header(path)
    return base, {k: (_DTYPES[v["dtype"]], v["shape"], *v["data_offsets"]) for k, v in header.items()}
