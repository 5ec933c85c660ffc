"""Where SAE training batches come from: an activation store on disk, or the model itself, streamed.

A source yields ``(x, target)`` pairs ``[batch, d_in], [batch, d_out]`` (``target is x`` for an SAE; the
output hook for a transcoder) in a deterministic order for a given seed, and can skip its first ``n``
batches cheaply so that a resumed training run sees exactly the batches it had not seen yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..errors import ShoestringError


@dataclass
class StoreSource:
    """Shuffled batches from a :class:`~shoestring.store.ActivationStore` (``epochs`` passes; the BOS that
    starts each context is skipped by default: its huge norm is an attention sink, not text)."""

    store: object
    hook: str
    batch_size: int = 4096
    hook_out: str | None = None
    seed: int = 0
    epochs: int = 1
    skip_bos: bool = True

    def __post_init__(self):
        from ..store import ActivationStore

        if not isinstance(self.store, ActivationStore):
            self.store = ActivationStore(self.store)
        self.d_in = self.store.width(self.hook)
        self.d_out = self.store.width(self.hook_out) if self.hook_out else self.d_in
        self.n_tokens = len(self.store)

    def _batches(self, hook: str) -> Iterator[torch.Tensor]:
        return self.store.batches(hook, self.batch_size, seed=self.seed, epochs=self.epochs, skip_bos=self.skip_bos,
                                  drop_last=True)

    def batches(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        xs = self._batches(self.hook)
        ys = self._batches(self.hook_out) if self.hook_out else None
        for i, x in enumerate(xs):
            y = next(ys) if ys is not None else None
            if i < skip:
                continue
            x = x.float()
            yield x, (x if y is None else y.float())


@dataclass
class StreamSource:
    """Batches computed on the fly: the model runs over packed contexts of ``corpus`` (stopping after the
    deepest hook) and the activations of ``buffer_contexts`` contexts are shuffled together before they are
    cut into batches. Position 0 of each context (BOS) is dropped, so every buffer holds the same number of
    tokens and skipping whole buffers on resume needs no forward pass."""

    lm: object
    corpus: object
    hook: str
    batch_size: int = 4096
    hook_out: str | None = None
    context_length: int = 256
    buffer_contexts: int = 128
    forward_batch: int = 16
    seed: int = 0
    _widths: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        shapes = self.lm.point_shapes(batch=1, pos=2)
        for h in filter(None, (self.hook, self.hook_out)):
            if h not in shapes:
                self.lm.resolve(h)  # raises the usual unknown-hook error
            self._widths[h] = shapes[h][-1]
        self.d_in = self._widths[self.hook]
        self.d_out = self._widths[self.hook_out] if self.hook_out else self.d_in
        if self.buffer_contexts % self.forward_batch:
            raise ShoestringError(f"buffer_contexts={self.buffer_contexts} is not a multiple of forward_batch={self.forward_batch}",
                                  "pick a buffer that is a whole number of forward batches")
        self.n_tokens = None

    @property
    def buffer_tokens(self) -> int:
        return self.buffer_contexts * (self.context_length - 1)

    def batches(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from ..data.pack import pack_batches

        hooks = [h for h in (self.hook, self.hook_out) if h]
        skip_buffers = (skip * self.batch_size) // self.buffer_tokens
        skip_rows = skip * self.batch_size - skip_buffers * self.buffer_tokens
        gen = torch.Generator().manual_seed(self.seed)
        packed = pack_batches(self.corpus, self.lm.tokenizer, self.context_length, self.forward_batch,
                              skip_contexts=skip_buffers * self.buffer_contexts)
        for _ in range(skip_buffers):  # keep the shuffle stream aligned with an uninterrupted run
            torch.randperm(self.buffer_tokens, generator=gen)
        carry = None
        while True:
            parts = {h: [] for h in hooks}
            for _ in range(self.buffer_contexts // self.forward_batch):
                batch = next(packed, None)
                if batch is None:
                    break
                _, acts = self.lm.run_with_cache(batch.tokens, hooks)
                for h in hooks:
                    parts[h].append(acts[h][:, 1:].reshape(-1, acts[h].shape[-1]).float())
            if not parts[self.hook]:
                return
            rows = {h: torch.cat(v) for h, v in parts.items()}
            n = len(rows[self.hook])
            perm = torch.randperm(self.buffer_tokens, generator=gen)
            perm = perm[perm < n] if n < self.buffer_tokens else perm
            pool = torch.cat([rows[h][perm] for h in hooks], dim=-1)
            if carry is not None:
                pool = torch.cat([carry, pool])
            if skip_rows:
                pool, skip_rows = pool[min(skip_rows, len(pool)):], max(0, skip_rows - len(pool))
            full = len(pool) - len(pool) % self.batch_size
            for a in range(0, full, self.batch_size):
                chunk = pool[a:a + self.batch_size]
                x = chunk[:, :self.d_in]
                yield x, (chunk[:, self.d_in:] if self.hook_out else x)
            carry = pool[full:]
