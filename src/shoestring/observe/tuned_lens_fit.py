"""Fit a tuned lens by streaming a corpus (resumable) or an activation store; measure lenses by KL.

See :mod:`shoestring.observe.tuned_lens` for the method and the paper.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ShoestringError
from .tuned_lens import LensMoments, TunedLens, residual_stack, rms_normalise

STATE = "fit-state.safetensors"


def _corpus(corpus):
    from ..data import load_corpus

    return load_corpus(corpus) if isinstance(corpus, str) else corpus


def _batches(lm, corpus, context_length: int, batch_size: int, skip_contexts: int = 0):
    """Packed batches and the mask of real stream tokens (no inserted BOS, no padding)."""
    from ..data import pack_batches

    for b in pack_batches(corpus, lm.tokenizer, context_length, batch_size, skip_contexts=skip_contexts):
        yield b.tokens, b.doc_ids >= 0


def _bar(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", unit_scale=True, disable=not enabled, desc=desc,
                dynamic_ncols=True)


def _identity(lm, corpus, context_length: int, batch_size: int) -> dict:
    from ..store.writer import model_fingerprint

    return {"model": lm.name, "model_fingerprint": model_fingerprint(lm), "corpus": getattr(corpus, "name", "?"),
            "context_length": context_length, "batch_size": batch_size}


def _load_state(path: Path, ident: dict) -> tuple[LensMoments, int] | None:
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        saved = json.loads(f.metadata()["identity"])
    if saved != ident:
        diff = sorted(k for k in ident if saved.get(k) != ident[k])
        raise ShoestringError(f"{path.parent} holds a tuned-lens fit with other settings ({', '.join(diff)})",
                              "pass the same settings to resume, or another --out folder")
    state = load_file(str(path))
    return LensMoments.from_state(state), int(state.pop("contexts")[0])


def _save_state(path: Path, moments: LensMoments, contexts: int, ident: dict) -> None:
    import json

    from safetensors.torch import save_file

    from ..runs.atomic import atomic_path

    with atomic_path(path) as tmp:
        save_file({**moments.state(), "contexts": torch.tensor([contexts])}, str(tmp),
                  metadata={"identity": json.dumps(ident, sort_keys=True)})


@torch.no_grad()
def fit_tuned_lens(lm, corpus="stdlib-prose", *, tokens: int = 1_000_000, context_length: int = 256,
                   batch_size: int = 8, ridge: float = 1e-3, out=None, checkpoint_every: int = 16,
                   progress: bool = True) -> TunedLens:
    """Fit one affine translator per layer on ``tokens`` tokens of ``corpus`` (one forward pass per batch).

    Parameters
    ----------
    corpus
        A corpus spec (see :func:`shoestring.data.load_corpus`) or a :class:`~shoestring.data.Corpus`;
        hold out documents for evaluation with :func:`shoestring.data.split`.
    ridge
        Shrinkage towards the identity (the logit lens), relative to the mean activation variance.
    out
        A folder: the fit checkpoints its running sums there every ``checkpoint_every`` batches and an
        interrupted fit resumes from them; the finished lens is saved there too.
    """
    corpus = _corpus(corpus)
    if tokens < 1:
        raise ShoestringError(f"tokens={tokens}", "fit the tuned lens on at least one token (about 1M is usual)")
    if lm.n_layers < 2:
        raise ShoestringError("the model has one layer; its only layer is the final one", "use a deeper model")
    ident = _identity(lm, corpus, context_length, batch_size)
    state_path = Path(out) / STATE if out is not None else None
    loaded = _load_state(state_path, ident) if state_path is not None else None
    moments, contexts = loaded or (LensMoments(lm.n_layers - 1, lm.anatomy.d_model), 0)
    bar = _bar(tokens, min(moments.n, tokens), progress, "tuned lens")
    since = 0
    for toks, keep in _batches(lm, corpus, context_length, batch_size, skip_contexts=contexts):
        if moments.n >= tokens:
            break
        stack = rms_normalise(residual_stack(lm, toks, keep))  # [L, N, d]
        take = min(stack.shape[1], tokens - moments.n)
        moments.add(stack[:-1, :take].cpu(), stack[-1, :take].cpu())
        contexts += toks.shape[0]
        bar.update(take)
        since += 1
        if state_path is not None and since >= checkpoint_every:
            _save_state(state_path, moments, contexts, ident)
            since = 0
    bar.close()
    if moments.n < tokens:
        print(f"note: the corpus ran out after {moments.n:,} of {tokens:,} tokens; the lens uses those")
    if state_path is not None:
        _save_state(state_path, moments, contexts, ident)
    W, b = moments.solve(ridge)
    meta = {**ident, "tokens": moments.n, "ridge": ridge, "method": "ridge regression to the last layer "
            "(RMS-normalised residuals), shrunk towards the identity"}
    lens = TunedLens(lm.n_layers, list(range(lm.n_layers - 1)), W, b, meta)
    if out is not None:
        lens.save(out)
    return lens


@torch.no_grad()
def fit_tuned_lens_from_store(store, *, ridge: float = 1e-3, batch_size: int = 4096,
                              progress: bool = True) -> TunedLens:
    """Fit from an :class:`~shoestring.store.ActivationStore` holding ``resid_post`` of every layer.

    Rows of the per-layer arrays are read in the same (unshuffled) order, so they stay aligned.
    """
    from ..store import ActivationStore

    store = ActivationStore(store) if not isinstance(store, ActivationStore) else store
    hooks = store.hooks
    n_layers = 0
    while f"blocks.{n_layers}.hook_resid_post" in hooks:
        n_layers += 1
    if n_layers < 2 or any(h.startswith("blocks.") and h.endswith("hook_resid_post")
                           and int(h.split(".")[1]) >= n_layers for h in hooks):
        raise ShoestringError(f"the store at {store.path} lacks resid_post of every layer (it holds {', '.join(hooks)})",
                              "cache 'blocks.*.hook_resid_post' with `shoestring cache`, then fit from it")
    streams = [store.batches(f"blocks.{L}.hook_resid_post", batch_size, shuffle=False, skip_bos=True)
               for L in range(n_layers)]
    moments = LensMoments(n_layers - 1, store.width(hooks[0]))
    bar = _bar(len(store), 0, progress, "tuned lens (store)")
    for rows in zip(*streams):
        stack = rms_normalise(torch.stack(rows))
        moments.add(stack[:-1], stack[-1])
        bar.update(stack.shape[1])
    bar.close()
    W, b = moments.solve(ridge)
    m = store.manifest
    meta = {"model": m.model, "model_fingerprint": m.model_fingerprint, "corpus": m.corpus, "store": str(store.path),
            "context_length": m.context_length, "tokens": moments.n, "ridge": ridge,
            "method": "ridge regression to the last layer (RMS-normalised residuals), shrunk towards the identity"}
    return TunedLens(n_layers, list(range(n_layers - 1)), W, b, meta)


@torch.no_grad()
def lens_kl(lm, lenses: dict, corpus="stdlib-prose", *, tokens: int = 8192, context_length: int = 256,
            batch_size: int = 4, progress: bool = True) -> dict:
    """Mean KL(final || lens) in nats, per layer, for each lens in ``lenses`` (``None`` = the logit lens).

    Returns ``{name: {"kl": [per layer], "stderr": [per layer]}, "tokens": n}``; the standard error is
    over contexts (tokens within one context are not independent).
    """
    corpus = _corpus(corpus)
    for lens in lenses.values():
        if lens is not None:
            lens.check_model(lm)
    names = [f"blocks.{L}.hook_resid_post" for L in range(lm.n_layers)]
    per_ctx = {k: [] for k in lenses}  # name -> list of [n_layers] mean KL per context
    seen = 0
    bar = _bar(tokens, 0, progress, "lens KL")
    for toks, keep in _batches(lm, corpus, context_length, batch_size):
        if seen >= tokens:
            break
        logits, acts = lm.run_with_cache(toks, names, stop_early=False)
        final = logits.float().log_softmax(-1)  # [B, T, V]
        for k, lens in lenses.items():
            rows = []
            for L, n in enumerate(names):
                h = acts[n] if lens is None else lens.translate(L, acts[n])
                lp = lm.unembed(h).float().log_softmax(-1)
                kl = (final.exp() * (final - lp)).sum(-1)  # [B, T]
                rows.append((kl * keep).sum(-1) / keep.sum(-1).clamp(min=1))  # [B]
            per_ctx[k].extend(torch.stack(rows, 1).cpu())  # B x [n_layers]
        seen += int(keep.sum())
        bar.update(int(keep.sum()))
    bar.close()
    if not seen:
        raise ShoestringError("the evaluation corpus gave no full context", "use a longer corpus or a shorter context")
    out = {"tokens": seen}
    for k, rows in per_ctx.items():
        m = torch.stack(rows)  # [contexts, n_layers]
        se = m.std(0) / len(m) ** 0.5 if len(m) > 1 else torch.zeros(m.shape[1])
        out[k] = {"kl": [round(float(v), 4) for v in m.mean(0)], "stderr": [round(float(v), 4) for v in se]}
    return out
