"""What each SAE latent is: how often it fires, how strongly, where (top contexts), and what it writes.

:func:`feature_stats` makes one streaming pass over an activation store in store order and keeps, per
latent, its firing count (density = count / tokens), the sum and max of its activation, its ``k`` top
activating tokens (a running top-k merged chunk by chunk) and a histogram of its nonzero activations.
:meth:`FeatureStats.contexts` turns the top tokens into token windows highlighted by the latent's value;
:func:`feature_logits` reads a latent's decoder row through the unembedding. Searching latents by text
lives in :mod:`shoestring.sae.search` (re-exported here).

Histograms without a second pass: each latent's histogram has ``bins`` equal bins over ``[0, upper]``,
where ``upper`` is a power of two, set the first time the latent fires (the smallest power of two >= its
largest value in that chunk). When a later value exceeds ``upper``, ``upper`` doubles and adjacent bins are
merged pairwise (exact: the old edges are a subset of the new ones). So the final histogram is exact for
its edges, and ``upper`` is the smallest power of two >= the latent's max: the max lies in
``(upper / 2, upper]`` and at least half of the bins cover the observed range.

Rows skipped: the BOS that starts each context (``ActivationStore._keep(skip_bos=True)``'s rule: the BOS
id with document id -1 or position <= 0) and padding (document id -2); they are not text.

>>> stats = feature_stats(sae, "store/", k=20)                          # doctest: +SKIP
>>> stats.density[:5], stats.contexts(12, "store/", tokenizer, sae)[0]["tokens"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ShoestringError
from ..runs.atomic import atomic_path, write_json
from .base import SAE

TENSORS, META = "feature_stats.safetensors", "feature_stats.json"
_FIELDS = ("counts", "act_sum", "act_max", "top_values", "top_index", "hist_counts", "hist_upper")


@dataclass
class FeatureStats:
    """Per-latent statistics of an SAE over the tokens of a store (see :func:`feature_stats`).

    ``top_values``/``top_index`` ``[d_sae, k]`` are sorted descending; a latent that fired on fewer than
    ``k`` tokens has ``-inf`` / ``-1`` in the unused slots. ``hist_counts [d_sae, bins]`` counts nonzero
    activations in equal bins over ``[0, hist_upper[latent]]`` (``hist_upper`` 0: never fired).
    """

    hook: str
    tokens: int
    counts: torch.Tensor  # [d_sae] int64: tokens it fired on
    act_sum: torch.Tensor  # [d_sae] float64
    act_max: torch.Tensor  # [d_sae] float32 (0 if it never fired)
    top_values: torch.Tensor  # [d_sae, k] float32
    top_index: torch.Tensor  # [d_sae, k] int64: global token index in the store
    hist_counts: torch.Tensor  # [d_sae, bins] int64
    hist_upper: torch.Tensor  # [d_sae] float64
    window: tuple[int, int] = (8, 4)  # tokens before / after the top token in a context
    meta: dict = field(default_factory=dict)
    sae: SAE | None = field(default=None, repr=False, compare=False)  # the SAE it was computed with (not saved)

    @property
    def d_sae(self) -> int:
        return int(self.counts.shape[0])

    @property
    def density(self) -> torch.Tensor:
        """Fraction of tokens each latent fired on, ``[d_sae]``."""
        return self.counts.double() / max(1, self.tokens)

    @property
    def mean_when_firing(self) -> torch.Tensor:
        return self.act_sum / self.counts.clamp_min(1).double()

    @property
    def dead(self) -> torch.Tensor:
        return self.counts == 0

    def histogram(self, latent: int) -> dict:
        """``{"edges": [bins + 1], "counts": [bins]}`` of the latent's nonzero activations."""
        self._check(latent)
        bins = self.hist_counts.shape[1]
        edges = torch.linspace(0, float(self.hist_upper[latent]), bins + 1)
        return {"edges": edges.tolist(), "counts": self.hist_counts[latent].tolist()}

    def _check(self, latent: int) -> None:
        if not 0 <= int(latent) < self.d_sae:
            raise ShoestringError(f"latent {latent} is out of range", f"the SAE has {self.d_sae} latents: 0 to {self.d_sae - 1}")

    # -- contexts --------------------------------------------------------------------------------
    def contexts(self, latent: int, store, tokenizer=None, sae: SAE | None = None) -> list[dict]:
        """The top examples of ``latent`` as token windows, with its activation on every token.

        Each dict: ``value`` (the top value), ``token_index``, ``doc_id``, ``tokens`` (decoded strings),
        ``token_ids``, ``values`` (the latent on each token, recomputed from the store), ``mark`` (where
        the top token sits in the window). A window holds ``window[0]`` tokens before and ``window[1]`` after,
        never crossing into another document or context. ``sae`` defaults to the one these stats came from.
        """
        return self.contexts_many([latent], store, tokenizer, sae)[int(latent)]

    @torch.no_grad()
    def contexts_many(self, latents, store, tokenizer=None, sae: SAE | None = None,
                      chunk: int = 4096) -> dict[int, list[dict]]:
        """:meth:`contexts` for several latents with one batched read and encode."""
        sae = sae if sae is not None else self.sae
        if sae is None:
            raise ShoestringError("these statistics were loaded from disk and hold no SAE", "pass sae= to contexts()")
        store = _open_store(store)
        docs, ids = store.doc_ids(), store.tokens()
        T = store.manifest.context_length
        before, after = self.window
        plan, rows, owner = [], [], []
        for lat in map(int, latents):
            self._check(lat)
            for v, i in zip(self.top_values[lat].tolist(), self.top_index[lat].tolist()):
                if i < 0:
                    continue
                lo, hi = max(i - before, i // T * T), min(i + after, i // T * T + T - 1)
                while lo < i and docs[lo] != docs[i]:  # documents are contiguous within a context
                    lo += 1
                while hi > i and docs[hi] != docs[i]:
                    hi -= 1
                plan.append((lat, v, i, lo, hi))
                rows.append(np.arange(lo, hi + 1))
                owner.append(np.full(hi - lo + 1, lat))
        out: dict[int, list[dict]] = {int(lat): [] for lat in latents}
        if not plan:
            return out
        rows_all, owner_all = np.concatenate(rows), torch.from_numpy(np.concatenate(owner))
        values = torch.empty(len(rows_all))
        dev = sae.W_enc.device
        for a in range(0, len(rows_all), chunk):
            z = sae.encode(store.get(self.hook, rows_all[a:a + chunk]).float().to(dev))  # [n, d_sae]
            values[a:a + chunk] = z.gather(1, owner_all[a:a + chunk, None].to(dev)).squeeze(1).float().cpu()
        names = _decoder(tokenizer, np.unique(ids[rows_all]))
        at = 0
        for lat, v, i, lo, hi in plan:
            n = hi - lo + 1
            tok = ids[lo:hi + 1].tolist()
            out[lat].append({"value": float(v), "token_index": int(i), "doc_id": int(docs[i]), "token_ids": tok,
                             "tokens": [names[t] for t in tok], "values": values[at:at + n].tolist(), "mark": i - lo})
            at += n
        return out

    # -- persistence -----------------------------------------------------------------------------
    def save(self, folder) -> Path:
        """Write ``folder/feature_stats.safetensors`` and ``folder/feature_stats.json`` (each atomically)."""
        folder = Path(folder)
        with atomic_path(folder / TENSORS) as tmp:
            save_file({f: getattr(self, f).contiguous() for f in _FIELDS}, str(tmp))
        write_json(folder / META, {"hook": self.hook, "tokens": self.tokens, "window": list(self.window), "meta": self.meta})
        return folder

    @classmethod
    def load(cls, folder) -> "FeatureStats":
        folder = Path(folder)
        try:
            info = json.loads((folder / META).read_text())
            tensors = load_file(str(folder / TENSORS))
        except (OSError, ValueError) as err:
            raise ShoestringError(f"no readable feature statistics in {folder} ({err})",
                                  "compute them with feature_stats(...).save(folder)") from None
        return cls(info["hook"], int(info["tokens"]), *(tensors[f] for f in _FIELDS), window=tuple(info["window"]),
                   meta=info.get("meta", {}))


def _open_store(store):
    from ..store import ActivationStore

    return store if isinstance(store, ActivationStore) else ActivationStore(store)


def _decoder(tokenizer, ids) -> dict[int, str]:
    """Token id -> its string, decoded one token at a time (``str(id)`` without a tokenizer)."""
    ids = [int(t) for t in ids]
    if tokenizer is None:
        return {t: str(t) for t in ids}
    return {t: tokenizer.decode([t]) for t in ids}


def kept_rows(store) -> np.ndarray:
    """Boolean ``[n_tokens]``: rows that are text (not a context's BOS, not padding)."""
    tokens, docs = store.tokens(), store.doc_ids()
    keep = docs != -2
    bos = store.manifest.meta.get("bos_token_id")
    if bos is not None:
        keep &= ~((tokens == bos) & ((docs == -1) | (store.positions() <= 0)))
    return keep


def _grow(hist: torch.Tensor, upper: torch.Tensor, m: torch.Tensor) -> None:
    """Make ``upper >= m`` per latent: set it on first firing, else double it, merging bins pairwise."""
    bins = hist.shape[1]
    fresh = (upper == 0) & (m > 0)
    upper[fresh] = torch.exp2(torch.ceil(torch.log2(m[fresh])))
    grow = (upper > 0) & (m > upper)  # float rounding of log2 can leave a fresh one short too
    while bool(grow.any()):
        h = hist[grow]
        hist[grow] = torch.cat([h.view(-1, bins // 2, 2).sum(-1), torch.zeros_like(h[:, : bins // 2])], 1)
        upper[grow] *= 2
        grow = (upper > 0) & (m > upper)


@torch.no_grad()
def feature_stats(sae: SAE, store, hook: str | None = None, *, k: int = 20, window: tuple[int, int] = (8, 4),
                  bins: int = 30, max_tokens: int | None = None, batch_size: int = 8192,
                  progress: bool = False) -> FeatureStats:
    """One streaming pass over ``store``'s activations at the SAE's hook, in store order.

    Parameters
    ----------
    sae
        Any SAE (``encode [.., d_in] -> [.., d_sae]``).
    store
        An :class:`~shoestring.store.ActivationStore` or its folder.
    hook
        The hook to read (default ``sae.cfg.hook_name``).
    k
        Top examples kept per latent (only tokens where it fired).
    window
        Tokens before / after the top token that :meth:`FeatureStats.contexts` shows.
    bins
        Histogram bins per latent (even; see the module docstring for the doubling scheme).
    max_tokens
        Stop after this many (non-BOS) tokens.
    batch_size
        Rows encoded at once; memory is about ``2 * batch_size * d_sae * 4`` bytes.

    Returns
    -------
    FeatureStats
    """
    hook = hook or sae.cfg.hook_name
    if not hook:
        raise ShoestringError("the SAE does not say which hook it reads", "pass hook=, e.g. blocks.5.hook_resid_post")
    if k < 1 or bins < 2 or bins % 2 or batch_size < 1:
        raise ShoestringError(f"k={k}, bins={bins}, batch_size={batch_size}", "use k >= 1, an even bins >= 2, batch_size >= 1")
    store = _open_store(store)
    if store.width(hook) != sae.cfg.d_in:
        raise ShoestringError(f"{hook} in the store is {store.width(hook)} wide but the SAE reads {sae.cfg.d_in}",
                              "use the store and hook the SAE was trained on")
    keep = kept_rows(store)
    total = int(keep.sum()) if max_tokens is None else min(int(keep.sum()), int(max_tokens))
    if total < 1:
        raise ShoestringError(f"the store at {store.path} holds no text tokens to read", "cache a corpus first")
    n = sae.cfg.d_sae
    counts, act_sum = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.float64)
    act_max = torch.zeros(n)
    top_v, top_i = torch.full((n, k), float("-inf")), torch.full((n, k), -1, dtype=torch.long)
    hist, upper = torch.zeros(n, bins, dtype=torch.long), torch.zeros(n, dtype=torch.float64)
    dev = sae.W_enc.device
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="feature stats", unit="tok")
    seen = offset = 0
    for batch in store.batches(hook, batch_size, shuffle=False):
        sel = keep[offset:offset + len(batch)]
        rows = torch.from_numpy(np.nonzero(sel)[0] + offset)  # global index of each kept row
        offset += len(batch)
        rows = rows[: total - seen]
        if not len(rows):
            continue
        z = sae.encode(batch[torch.from_numpy(sel)][: len(rows)].float().to(dev)).float()  # [c, d_sae]
        seen += len(rows)
        fired = z > 0
        counts += fired.sum(0).cpu()
        act_sum += z.sum(0, dtype=torch.float64).cpu()
        m = z.amax(0).clamp_min(0).cpu()
        act_max = torch.maximum(act_max, m)
        v, i = z.T.topk(min(k, len(rows)), dim=1)  # [d_sae, k']
        v, i = v.cpu(), rows[i.cpu()]
        i = torch.where(v > 0, i, -1)
        v = torch.where(v > 0, v, float("-inf"))
        merged = torch.cat([top_v, v], 1).topk(k, dim=1)
        top_v, top_i = merged.values, torch.cat([top_i, i], 1).gather(1, merged.indices)
        _grow(hist, upper, m.double())
        tok, lat = fired.nonzero(as_tuple=True)
        vals = z[tok, lat].double().cpu()
        lat = lat.cpu()
        b = (vals / upper[lat] * bins).long().clamp_(0, bins - 1)
        hist.view(-1).index_add_(0, lat * bins + b, torch.ones_like(b))
        if bar is not None:
            bar.update(len(rows))
        if seen >= total:
            break
    if bar is not None:
        bar.close()
    meta = {"sae": repr(sae), "store": str(store.path), "model": store.manifest.model, "d_sae": n, "k": k, "bins": bins}
    return FeatureStats(hook, seen, counts, act_sum, act_max, top_v, top_i, hist, upper, tuple(window), meta, sae)


@torch.no_grad()
def feature_logits(sae: SAE, lm, latents, k: int = 10) -> dict[int, dict]:
    """Tokens each latent promotes and suppresses when it fires: its decoder row ``W_dec[latent]`` read
    through the final norm's gain and the unembedding (:func:`~shoestring.observe.neurons.direct_logit_effect`).

    Returns ``{latent: {"promotes": [(token, effect), ...], "suppresses": [...]}}``. Only meaningful for an
    SAE (or transcoder) that writes to the residual stream.
    """
    from ..observe.neurons import direct_logit_effect

    d_out = sae.W_dec.shape[1]
    if d_out != lm.anatomy.d_model:
        raise ShoestringError(f"the SAE writes {d_out}-wide vectors, not the residual stream ({lm.anatomy.d_model})",
                              "direct logit effects need an SAE on a residual, attn_out or mlp_out hook")
    out = {}
    for lat in map(int, latents):
        if not 0 <= lat < sae.cfg.d_sae:
            raise ShoestringError(f"latent {lat} is out of range", f"the SAE has {sae.cfg.d_sae} latents")
        out[lat] = direct_logit_effect(lm, sae.W_dec[lat].detach().float(), k)
    return out


from .search import search_by_contrast, search_by_text  # noqa: E402

__all__ = ["FeatureStats", "feature_stats", "feature_logits", "kept_rows", "search_by_text", "search_by_contrast"]
