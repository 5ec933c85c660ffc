"""The arithmetic of GCG for one prompt: the token gradient of the target loss, and the loss of many candidate
suffixes, computed without redoing work the candidates share.

The prompt is laid out as ``before | suffix | after | target`` (``before`` = chat template + request, ``after`` =
the end of the user turn and the assistant header). The loss is the mean cross-entropy of the target tokens, as in
GCG (Zou et al. 2023, "Universal and Transferable Adversarial Attacks on Aligned Language Models",
https://arxiv.org/abs/2307.15043). Three savings, each exact (the losses equal a plain full forward's to float
rounding, tested):

- **prefix KV reuse**: the keys and values of ``before`` are computed once per prompt;
- **suffix KV reuse**: a candidate differs from the current suffix from its first swapped position ``p`` on, so
  the keys and values of ``suffix[:p]`` are those of the current suffix (kept from the gradient pass). Candidates
  are grouped by ``p`` (rounded down to ``reuse_stride``) and each group runs only from its start;
- **logits only where the loss reads them**: the LM head (49k x 576 on SmolLM2) runs on the target positions only
  (``logits_to_keep``), not on every position of every candidate.

One saving is not exact and is chosen by the caller (:class:`shoestring.attack.gcg.GCG` ``screen``): scoring all
candidates under bfloat16 autocast (2.3x the matrix throughput of float32 on a CPU with AVX512-BF16) and then
rescoring the best few exactly in the model's own precision; the loss GCG reports and acts on is always the exact
one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import contextlib

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from ..errors import ShoestringError


def _cache(config, kv: list[tuple[torch.Tensor, torch.Tensor]], batch: int) -> DynamicCache:
    """A fresh cache holding ``kv`` (batch 1 per layer), expanded to ``batch`` rows (a view until written). A layer
    without keys (skipped: :class:`~shoestring.prune.skip.SkipLayers` stores nothing) stays empty."""
    return DynamicCache([(None, None) if k is None else (k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                         for k, v in kv], config=config)


def _first(kv: list, n: int) -> list:
    """The first ``n`` positions of every layer's keys and values (empty layers stay empty)."""
    return [(None, None) if k is None else (k[:, :, :n], v[:, :, :n]) for k, v in kv]


def fast_screen_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the hardware computes it natively (CUDA with bf16, a CPU with AVX512-BF16 / AMX), else None
    (emulated bfloat16 on an older CPU would be slower than float32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        try:
            return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
        except (AttributeError, RuntimeError):
            return None
    return None


def _kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every layer's keys and values, detached; ``(None, None)`` for a layer that stored none (skipped)."""
    return [(None, None) if layer.keys is None else (layer.keys.detach(), layer.values.detach())
            for layer in cache.layers]


@dataclass
class SuffixProblem:
    """One prompt's GCG objective on ``lm``: ``before_ids``, ``after_ids`` and ``target_ids`` are 1-D token tensors.

    ``reuse_stride`` groups candidates by their first changed position (1: exact; larger: fewer, bigger forward
    passes); ``0`` turns suffix KV reuse off (each candidate runs from the first suffix token).
    """

    lm: object
    before_ids: torch.Tensor  # [n_before]
    after_ids: torch.Tensor  # [n_after]
    target_ids: torch.Tensor  # [n_target]
    reuse_stride: int = 4
    batch_size: int | None = None  # candidates per forward pass (None: all of a group at once)
    prefix_kv: list = field(default=None, repr=False)
    suffix_kv: list = field(default=None, repr=False)  # prefix + current suffix, from the last gradient pass
    current: torch.Tensor | None = field(default=None, repr=False)  # [n_suffix] the suffix suffix_kv belongs to

    def __post_init__(self):
        if self.target_ids.numel() == 0:
            raise ShoestringError("the target encodes to no tokens", "give a non-empty target string")
        model = self.lm.model
        self._embed = model.get_input_embeddings()
        with torch.no_grad():
            out = model(input_ids=self.before_ids[None], use_cache=True)
        self.prefix_kv = _kv(out.past_key_values)
        self._after_emb = self._embed(self.after_ids[None]).detach()
        self._target_emb = self._embed(self.target_ids[None]).detach()

    @property
    def n_before(self) -> int:
        return int(self.before_ids.numel())

    def full_ids(self, suffix_ids: torch.Tensor) -> torch.Tensor:
        """The whole prompt's token ids (no target), ready for generation: ``[n]``."""
        return torch.cat([self.before_ids, suffix_ids, self.after_ids])

    def _target_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` [b, n_target + 1, vocab] (the last ``n_target + 1`` positions) -> mean CE per row [b]."""
        pred = logits[:, :-1].float()
        tgt = self.target_ids[None].expand(pred.shape[0], -1)
        return F.cross_entropy(pred.transpose(1, 2), tgt, reduction="none").mean(-1)

    def gradient(self, suffix_ids: torch.Tensor) -> tuple[torch.Tensor, float, bool]:
        """The gradient of the loss with respect to the one-hot suffix tokens ``[n_suffix, vocab]``, the loss, and
        whether the target is already every position's argmax. Keeps the suffix's keys and values for reuse."""
        with torch.enable_grad():
            return self._gradient(suffix_ids)

    def _gradient(self, suffix_ids: torch.Tensor) -> tuple[torch.Tensor, float, bool]:
        model, W = self.lm.model, self._embed.weight
        emb = self._embed(suffix_ids[None]).detach().requires_grad_(True)  # [1, n_suffix, d]
        x = torch.cat([emb, self._after_emb, self._target_emb], dim=1)
        n_t = self.target_ids.numel()
        out = model(inputs_embeds=x, past_key_values=_cache(model.config, self.prefix_kv, 1), use_cache=True,
                    logits_to_keep=n_t + 1)
        loss = self._target_loss(out.logits)[0]
        (g_emb,) = torch.autograd.grad(loss, emb)
        # d loss / d onehot = d loss / d emb @ W^T   (emb = onehot @ W)
        grad = g_emb[0] @ W.detach().T  # [n_suffix, vocab]
        n_keep = self.n_before + suffix_ids.numel()
        self.suffix_kv = _first(_kv(out.past_key_values), n_keep)
        self.current = suffix_ids.clone()
        exact = bool((out.logits[0, :-1].argmax(-1) == self.target_ids).all())
        return grad, float(loss.detach()), exact

    @torch.no_grad()
    def losses(self, candidates: torch.Tensor, dtype: torch.dtype | None = None,
               reuse: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of each candidate suffix ``[b, n_suffix]`` -> ``([b] losses, [b] exact-match flags)``; with ``dtype``
        (e.g. ``torch.bfloat16``) under autocast to that precision (a screen, not exact). ``reuse=False`` runs all
        candidates in one batch from the first suffix token (cheaper than several groups for a handful)."""
        ctx = torch.autocast(self.lm.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            return self._losses(candidates, reuse)

    def _losses(self, candidates: torch.Tensor, reuse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.lm.model
        b, n = candidates.shape
        n_t = self.target_ids.numel()
        if reuse and self.suffix_kv is not None and self.reuse_stride > 0 and self.current is not None \
                and self.current.numel() == n:
            differs = candidates != self.current[None]
            first = torch.where(differs.any(1), differs.float().argmax(1), torch.full((b,), n - 1))
            starts = (first // self.reuse_stride) * self.reuse_stride
        else:
            starts = torch.zeros(b, dtype=torch.long)
        loss = torch.empty(b)
        exact = torch.zeros(b, dtype=torch.bool)
        for s in starts.unique().tolist():
            rows = (starts == s).nonzero().flatten()
            step = self.batch_size or rows.numel()
            for i in range(0, rows.numel(), step):
                r = rows[i:i + step]
                kv = self.prefix_kv if s == 0 or self.suffix_kv is None else _first(self.suffix_kv, self.n_before + s)
                x = torch.cat([self._embed(candidates[r, s:]), self._after_emb.expand(r.numel(), -1, -1),
                               self._target_emb.expand(r.numel(), -1, -1)], dim=1)
                logits = model(inputs_embeds=x, past_key_values=_cache(model.config, kv, r.numel()), use_cache=True,
                               logits_to_keep=n_t + 1).logits
                loss[r] = self._target_loss(logits)
                exact[r] = (logits[:, :-1].argmax(-1) == self.target_ids[None]).all(1)
        return loss, exact

    @torch.no_grad()
    def reference_losses(self, candidates: torch.Tensor) -> torch.Tensor:
        """The same losses from one plain forward over the whole prompt (no cache, full logits): the check."""
        b = candidates.shape[0]
        ids = torch.cat([self.before_ids[None].expand(b, -1), candidates, self.after_ids[None].expand(b, -1),
                         self.target_ids[None].expand(b, -1)], dim=1)
        n_t = self.target_ids.numel()
        logits = self.lm.model(input_ids=ids).logits[:, -(n_t + 1):]
        return self._target_loss(logits)
