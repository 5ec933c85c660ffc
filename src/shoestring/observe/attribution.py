"""Direct logit attribution: how much each head, MLP and the embeddings write toward one logit.

The final residual at the last position is a sum of parts (embeddings, each head's output, the
attention biases, each MLP's output). Freezing the final norm's scale at the value it takes on the
actual residual makes norm and unembedding linear, so each part's logit contribution adds up to the
model's logit exactly. See Elhage et al., "A Mathematical Framework for Transformer Circuits" (2021),
https://transformer-circuits.pub/2021/framework/index.html , and Wang et al., "Interpretability in
the Wild" (2022), https://arxiv.org/abs/2211.00593 .

>>> r = direct_logit_attribution(lm, "The Eiffel Tower is in the city of", " Paris", wrong=" Rome")  # doctest: +SKIP
>>> r.top(5)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .patching import _ids, token_id


@dataclass
class DLAResult:
    """Contributions to ``logit[target] (- logit[wrong])`` at the last position.

    Attributes
    ----------
    heads
        ``[n_layers, n_heads]`` each head's output (``hook_result``, bias excluded).
    attn_bias
        ``[n_layers]`` what the attention branch writes beyond its heads (output bias; for families
        with a norm after attention, also that norm's non-linear part).
    mlps
        ``[n_layers]`` each MLP's output.
    embed
        The block-0 input (token, position embeddings and any scaling).
    constant
        Final-norm bias and unembedding bias.
    logit
        The model's own value (pre soft-cap); ``total()`` matches it.
    """

    heads: torch.Tensor
    attn_bias: torch.Tensor
    mlps: torch.Tensor
    embed: float
    constant: float
    logit: float

    def total(self) -> float:
        return float(self.heads.sum() + self.attn_bias.sum() + self.mlps.sum()) + self.embed + self.constant

    def top(self, k: int = 10) -> list[dict]:
        """The ``k`` parts with the largest absolute contribution."""
        parts = [("embed", self.embed)] + [(f"L{L}.mlp", float(v)) for L, v in enumerate(self.mlps)]
        parts += [(f"L{L}.H{h}", float(self.heads[L, h])) for L in range(self.heads.shape[0])
                  for h in range(self.heads.shape[1])]
        parts.sort(key=lambda p: -abs(p[1]))
        return [{"part": n, "contribution": round(v, 4)} for n, v in parts[:k]]


def _eps(norm: nn.Module) -> float:
    for attr in ("eps", "variance_epsilon", "epsilon"):
        v = getattr(norm, attr, None)
        if isinstance(v, (int, float)):
            return float(v)
    return 1e-6


def frozen_norm(norm: nn.Module | None, x: torch.Tensor):
    """The final norm made linear at residual ``x`` ``[d_model]``: returns ``(apply(part), bias)``.

    LayerNorm: ``(part - mean(part)) * w / sqrt(var(x) + eps)``; RMSNorm kinds:
    ``part * w / sqrt(mean(x^2) + eps)``, where ``w`` is the norm's effective weight (read off the
    module itself, so Gemma's ``1 + w`` is covered). ``apply(x) + bias`` equals ``norm(x)``.
    """
    if norm is None:
        return (lambda part: part), torch.zeros_like(x)
    x = x.float()
    centred = isinstance(norm, nn.LayerNorm) or "layernorm" in type(norm).__name__.lower()
    eps = _eps(norm)
    if centred:
        scale = (x.var(unbiased=False) + eps).rsqrt()
        w = norm.weight.float() if getattr(norm, "weight", None) is not None else torch.ones_like(x)
        b = norm.bias.float() if getattr(norm, "bias", None) is not None else torch.zeros_like(x)
        return (lambda part: (part - part.mean(-1, keepdim=True)) * scale * w), b
    scale = (x.pow(2).mean() + eps).rsqrt()
    ones = torch.ones(1, x.shape[-1], dtype=norm_dtype(norm), device=x.device)
    with torch.no_grad():  # effective weight: norm(1) = w / sqrt(1 + eps)
        w = norm(ones)[0].float() * (1.0 + eps) ** 0.5
    return (lambda part: part * scale * w), torch.zeros_like(x)


def norm_dtype(norm: nn.Module) -> torch.dtype:
    p = next(norm.parameters(), None)
    return p.dtype if p is not None else torch.float32


@torch.no_grad()
def direct_logit_attribution(lm, prompt, target, wrong=None) -> DLAResult:
    """Each head's, MLP's and the embeddings' direct contribution to the last position's logit.

    Parameters
    ----------
    lm
        The :class:`shoestring.LM`.
    prompt
        Text or token ids (one sequence).
    target, wrong
        Single tokens (text or id); with ``wrong`` the direction is ``W_U[target] - W_U[wrong]``.

    Returns
    -------
    DLAResult
        Whose parts sum (``total()``) to the model's logit (difference), before any soft-cap.
    """
    ids = _ids(lm, prompt)
    t = token_id(lm, target)
    w = None if wrong is None else token_id(lm, wrong)
    L, H = lm.n_layers, lm.anatomy.n_heads
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.{p}" for i in range(L)
                                             for p in ("attn.hook_result", "hook_attn_out", "hook_mlp_out",
                                                       "hook_resid_post")]
    with lm.capture(names, pos=-1) as acts, torch.no_grad():
        lm.model(input_ids=ids)
    final = acts[f"blocks.{L - 1}.hook_resid_post"][0, 0].float()
    W = lm.anatomy.unembed.weight.float()
    direction = W[t] - (W[w] if w is not None else 0.0)
    ub = getattr(lm.anatomy.unembed, "bias", None)
    apply, nbias = frozen_norm(lm.anatomy.final_norm, final)

    def contrib(part: torch.Tensor) -> torch.Tensor:  # [..., d_model] -> [...]
        return apply(part.float()) @ direction

    heads = torch.zeros(L, H)
    attn_bias, mlps = torch.zeros(L), torch.zeros(L)
    for i in range(L):
        res = acts[f"blocks.{i}.attn.hook_result"][0, 0].float()  # [head, d_model]
        heads[i] = contrib(res).cpu()
        attn_bias[i] = float(contrib(acts[f"blocks.{i}.hook_attn_out"][0, 0].float() - res.sum(0)))
        mlps[i] = float(contrib(acts[f"blocks.{i}.hook_mlp_out"][0, 0]))
    embed = float(contrib(acts["blocks.0.hook_resid_pre"][0, 0]))
    constant = float(nbias @ direction)
    if ub is not None:
        constant += float(ub[t] - (ub[w] if w is not None else 0.0))
    normed = lm.anatomy.final_norm(final[None].to(lm.dtype)) if lm.anatomy.final_norm is not None else final[None]
    with torch.no_grad():
        own = lm.anatomy.unembed(normed.to(lm.dtype))[0].float()  # the model's logits, before any soft-cap
    actual = float(own[t] - (own[w] if w is not None else 0.0))
    return DLAResult(heads, attn_bias, mlps, embed, constant, actual)

