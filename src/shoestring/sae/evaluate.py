"""Evaluate an SAE honestly: reconstruction, and what splicing it into the model costs, against baselines.

Reconstruction: L0, MSE, fraction of variance unexplained (FVU) and explained variance, cosine.
Downstream: next-token cross-entropy with the SAE's reconstruction spliced in at its hook, vs the clean
model, vs **zero-ablation** and vs **mean-ablation** of the hook. "CE recovered" against zero-ablation alone
flatters an SAE (zeroing a residual stream wrecks the model, so almost anything recovers most of it), so
both are reported, with the raw CE increase and the KL to the clean next-token distribution
(Gao et al. 2024 sec. 4.1, https://arxiv.org/abs/2406.04093; Makelov et al. 2024,
https://arxiv.org/abs/2405.08366).

Positions: the BOS at position 0 is neither spliced nor scored (its activation is an attention sink with a
huge norm, not text); scoring covers the predictions made at positions 1..T-2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ShoestringError
from .base import SAE


def _ce_kl(logits: torch.Tensor, clean_logp: torch.Tensor, tokens: torch.Tensor):
    """Per-context mean CE (predictions at positions 1..T-2) and mean KL(clean || this)."""
    logp = F.log_softmax(logits[:, 1:-1].float(), -1)
    ce = -logp.gather(-1, tokens[:, 2:, None]).squeeze(-1).mean(-1)  # [batch]
    kl = (clean_logp.exp() * (clean_logp - logp)).sum(-1).mean(-1)
    return ce, kl


@torch.no_grad()
def evaluate_sae(sae: SAE, lm, contexts: torch.Tensor, *, batch_size: int = 8, mean_act: torch.Tensor | None = None,
                 hook: str | None = None, progress: bool = False) -> dict:
    """Evaluate ``sae`` on ``contexts`` (token ids ``[n, T]``, e.g. held-out packed contexts).

    Returns a dict: ``l0``, ``mse`` (per element), ``fvu``, ``explained_variance``, ``cosine``;
    ``ce_clean``, ``ce_sae``, ``ce_zero``, ``ce_mean`` (nats/token) with standard errors over contexts,
    ``ce_increase`` (SAE minus clean), ``ce_recovered_zero`` / ``ce_recovered_mean`` (1 = as good as clean,
    0 = as bad as the ablation), ``kl_sae``/``kl_zero``/``kl_mean``; ``density`` (per latent, on these
    tokens), ``dead_fraction``/``dense_fraction`` on these tokens, and ``tokens``.
    """
    hook_in = hook or sae.cfg.hook_name
    hook_out = sae.cfg.hook_name_out if sae.cfg.is_transcoder else hook_in
    if not hook_in:
        raise ShoestringError("the SAE does not say which hook it reads", "pass hook=, e.g. blocks.15.hook_resid_post")
    lm.resolve(hook_in)
    lm.resolve(hook_out)
    contexts = torch.as_tensor(contexts)
    if contexts.ndim != 2 or contexts.shape[1] < 4:
        raise ShoestringError(f"contexts must be token ids [n, T] with T >= 4, not {list(contexts.shape)}", "pack a corpus into contexts first")
    sae = sae.eval()
    dev, dt = sae.W_enc.device, sae.W_enc.dtype
    if mean_act is None:  # the mean of the replaced hook over these tokens (a cheap, stop-early pass)
        total, n = 0.0, 0
        for a in range(0, len(contexts), batch_size):
            _, acts = lm.run_with_cache(contexts[a:a + batch_size], [hook_out])
            h = acts[hook_out][:, 1:].float()
            total, n = total + h.sum((0, 1)), n + h.shape[0] * h.shape[1]
        mean_act = total / n
    mean_act = mean_act.to(lm.device)

    stats = {k: [] for k in ("ce_clean", "ce_sae", "ce_zero", "ce_mean", "kl_sae", "kl_zero", "kl_mean")}
    sse = t_sq = l0_sum = cos_sum = 0.0
    t_sum = None  # the variance is taken around the mean of all evaluated tokens, not per batch
    n_tok, counts, d_out = 0, torch.zeros(sae.cfg.d_sae, dtype=torch.long), None
    seen = {}

    def splice_in(act):  # transcoder: remember the input of this forward
        seen["x"] = act
        return None

    def replace(fn):
        def edit(act):
            new = fn(act).to(act.dtype)
            out = act.clone()
            out[:, 1:] = new[:, 1:]
            return out
        return edit

    def reconstruct(act):
        x = seen["x"] if sae.cfg.is_transcoder else act
        return sae(x.to(dev, dt)).to(act.device)

    batches = range(0, len(contexts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="evaluating SAE", unit="batch")
    for a in batches:
        tokens = contexts[a:a + batch_size].to(lm.device)
        names = sorted({hook_in, hook_out})
        with lm.capture(names) as cap:
            clean = lm.forward(tokens)
        clean_logp = F.log_softmax(clean[:, 1:-1].float(), -1)
        ce, _ = _ce_kl(clean, clean_logp, tokens)
        stats["ce_clean"].append(ce)
        x = cap[hook_in][:, 1:].to(dev, dt).reshape(-1, sae.cfg.d_in)
        target = cap[hook_out][:, 1:].to(dev, torch.float32).reshape(len(x), -1)
        z = sae.encode(x)
        x_hat = sae.decode(z).float()
        sse += float((target - x_hat).pow(2).sum())
        t_sum = target.double().sum(0) + (t_sum if t_sum is not None else 0)
        t_sq += float(target.double().pow(2).sum())
        l0_sum += float((z > 0).sum())
        cos_sum += float(F.cosine_similarity(target, x_hat, dim=-1).sum())
        counts += (z > 0).sum(0).cpu()
        n_tok += len(x)
        d_out = target.shape[-1]
        variants = {"sae": reconstruct, "zero": torch.zeros_like, "mean": lambda act: mean_act.to(act.dtype).expand_as(act)}
        for name, fn in variants.items():
            edits = {hook_out: replace(fn)}
            if sae.cfg.is_transcoder and name == "sae":
                edits = {hook_in: splice_in, **edits}
            with lm.edit(edits):
                logits = lm.forward(tokens)
            ce, kl = _ce_kl(logits, clean_logp, tokens)
            stats[f"ce_{name}"].append(ce)
            stats[f"kl_{name}"].append(kl)
    out = {}
    for k, v in stats.items():
        t = torch.cat(v).double()
        out[k] = float(t.mean())
        out[f"{k}_se"] = float(t.std() / math.sqrt(len(t))) if len(t) > 1 else float("nan")
    c, s = out["ce_clean"], out["ce_sae"]
    out["ce_increase"] = s - c
    out["ce_recovered_zero"] = (out["ce_zero"] - s) / (out["ce_zero"] - c) if out["ce_zero"] != c else float("nan")
    out["ce_recovered_mean"] = (out["ce_mean"] - s) / (out["ce_mean"] - c) if out["ce_mean"] != c else float("nan")
    density = counts.double() / max(1, n_tok)
    sst = t_sq - float(t_sum.pow(2).sum()) / max(1, n_tok)
    out.update(l0=l0_sum / n_tok, mse=sse / (n_tok * d_out), fvu=sse / max(sst, 1e-12), explained_variance=1 - sse / max(sst, 1e-12),
               cosine=cos_sum / n_tok, tokens=n_tok, contexts=len(contexts), dead_fraction=float((density == 0).double().mean()),
               dense_fraction=float((density > 0.1).double().mean()), density=density)
    return out


def density_histogram(density: torch.Tensor, bins: int = 40) -> dict:
    """Histogram of log10 feature density (dead latents counted apart): ``{"edges", "counts", "dead"}``."""
    d = torch.as_tensor(density).double()
    alive = d[d > 0]
    if not len(alive):
        return {"edges": [], "counts": [], "dead": int((d == 0).sum())}
    logd = alive.log10()
    lo, hi = float(logd.min()), float(logd.max())
    hi = hi if hi > lo else lo + 1e-6
    counts = torch.histc(logd, bins=bins, min=lo, max=hi)
    edges = torch.linspace(lo, hi, bins + 1)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts], "dead": int((d == 0).sum())}
