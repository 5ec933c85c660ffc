"""Find SAE latents by text: those that fire most on one text, or more on one set of texts than another.

Both run the model on each text (texts of equal token length are batched, unpadded, so every activation is
the one the model computes for that text alone), encode the SAE's hook and leave out the BOS at position 0.

The contrast statistic: each text gets one score per latent, the latent's max activation over the text's
tokens. For sets A and B with means ``m_a, m_b``, sample variances ``v_a, v_b`` and sizes ``n_a, n_b``,
Welch's ``t = (m_a - m_b) / se`` with ``se = sqrt(v_a / n_a + v_b / n_b)``. A latent that fires identically
on every text of A and never on B has ``se = 0`` (an infinite t), so ranking uses the moderated
``score = (m_a - m_b) / (se + s0)`` of SAM (Tusher et al. 2001, https://doi.org/10.1073/pnas.091062498),
with ``s0`` the median ``se`` of the latents that vary: a difference must be large against the typical
noise, not only against its own.

>>> search_by_text(sae, lm, "The Eiffel Tower is in Paris", top=5)[0]["fired_on"]    # doctest: +SKIP
>>> search_by_contrast(sae, lm, french_texts, english_texts, top=10)[0]["latent"]    # doctest: +SKIP
"""

from __future__ import annotations

import torch

from ..errors import ShoestringError
from .base import SAE


@torch.no_grad()
def encode_texts(sae: SAE, lm, texts: list[str], hook: str | None = None) -> list[tuple[list[str], torch.Tensor]]:
    """Per text: its token strings and the SAE's latents on them, ``z [T, d_sae]`` (BOS left out)."""
    hook = hook or sae.cfg.hook_name
    if not hook:
        raise ShoestringError("the SAE does not say which hook it reads", "pass hook=, e.g. blocks.5.hook_resid_post")
    if lm.tokenizer is None:
        raise ShoestringError("searching by text needs the model's tokenizer", "load the model with its tokenizer")
    name = lm.resolve(hook)[0].name
    bos = lm.tokenizer.bos_token_id
    ids = [lm.tokenize(t)["input_ids"][0].cpu() for t in texts]
    out: list = [None] * len(texts)
    by_len: dict[int, list[int]] = {}
    for j, t in enumerate(ids):
        by_len.setdefault(len(t), []).append(j)
    dev, dt = sae.W_enc.device, sae.W_enc.dtype
    for group in by_len.values():
        batch = torch.stack([ids[j] for j in group])  # [b, T]: one length, no padding
        _, acts = lm.run_with_cache(batch, [name], device="cpu")
        x = acts[name].flatten(2)  # [b, T, width]
        if x.shape[-1] != sae.cfg.d_in:
            raise ShoestringError(f"{name} is {x.shape[-1]} wide but the SAE reads {sae.cfg.d_in}",
                                  "use the hook (and model) the SAE was trained on")
        for row, j in enumerate(group):
            start = 1 if bos is not None and len(ids[j]) and int(ids[j][0]) == bos else 0
            z = sae.encode(x[row, start:].to(dev, dt)).float().cpu()
            out[j] = ([lm.tokenizer.decode([int(t)]) for t in ids[j][start:]], z)
    for text, (tokens, _) in zip(texts, out):
        if not tokens:
            raise ShoestringError(f"the text {text[:40]!r} has no tokens besides BOS", "pass texts with some words")
    return out


def search_by_text(sae: SAE, lm, text: str, top: int = 20, hook: str | None = None) -> list[dict]:
    """The latents with the largest max activation on ``text``, largest first (only latents that fired).

    Returns
    -------
    list[dict]
        ``latent``, ``max``, ``mean`` (over the text's tokens), ``fired_on`` (``{"position", "token",
        "value"}`` for each token it fired on, in text order), and ``tokens`` / ``values`` (the whole
        text, for highlighting).
    """
    if not isinstance(text, str) or not text:
        raise ShoestringError("search_by_text needs a non-empty text", "pass a string, e.g. 'The Eiffel Tower'")
    [(tokens, z)] = encode_texts(sae, lm, [text], hook)
    peak = z.amax(0)  # [d_sae]
    order = peak.argsort(descending=True)[:top]
    rows = []
    for lat in order.tolist():
        if peak[lat] <= 0:
            break
        col = z[:, lat]
        rows.append({"latent": lat, "max": float(peak[lat]), "mean": float(col.mean()),
                     "fired_on": [{"position": p, "token": tokens[p], "value": float(col[p])}
                                  for p in torch.nonzero(col > 0).flatten().tolist()],
                     "tokens": tokens, "values": [round(float(v), 4) for v in col]})
    return rows


def search_by_contrast(sae: SAE, lm, texts_a: list[str], texts_b: list[str], top: int = 20,
                       hook: str | None = None) -> list[dict]:
    """Latents that fire more on ``texts_a`` than on ``texts_b``, ranked by the moderated t (module docstring).

    Returns
    -------
    list[dict]
        Up to ``top`` rows (latents with a positive difference only): ``latent``, ``mean_a``, ``mean_b``
        (mean over texts of the max activation per text), ``diff``, ``t`` (Welch; ``inf`` when both sets are
        constant), ``score`` (the moderated t used for ranking), ``fired_a`` / ``fired_b`` (fraction of texts
        it fired on).
    """
    texts_a, texts_b = list(texts_a), list(texts_b)
    if not texts_a or not texts_b:
        raise ShoestringError(f"a contrast needs texts on both sides (got {len(texts_a)} and {len(texts_b)})",
                              "pass at least one text in each set (more give a meaningful t)")
    enc = encode_texts(sae, lm, texts_a + texts_b, hook)
    s = torch.stack([z.amax(0) for _, z in enc]).double()  # [n_texts, d_sae]: max per text
    a, b = s[: len(texts_a)], s[len(texts_a):]

    def var(x):
        return x.var(0, unbiased=True) if len(x) > 1 else torch.zeros(x.shape[1], dtype=x.dtype)

    mean_a, mean_b = a.mean(0), b.mean(0)
    diff = mean_a - mean_b
    se = (var(a) / len(a) + var(b) / len(b)).sqrt()
    varying = se[se > 0]
    s0 = float(varying.median()) if len(varying) else 1e-12
    inf = float("inf")
    t = torch.nan_to_num(diff / se, nan=0.0, posinf=inf, neginf=-inf)  # se = 0: +-inf, or 0 with no difference
    score = diff / (se + s0)
    order = score.argsort(descending=True)
    rows = []
    for lat in order.tolist():
        if len(rows) >= top or diff[lat] <= 0:
            break
        rows.append({"latent": lat, "mean_a": float(mean_a[lat]), "mean_b": float(mean_b[lat]), "diff": float(diff[lat]),
                     "t": float(t[lat]), "score": float(score[lat]), "fired_a": float((a[:, lat] > 0).double().mean()),
                     "fired_b": float((b[:, lat] > 0).double().mean())})
    return rows
