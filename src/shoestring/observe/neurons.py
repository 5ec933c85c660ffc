"""Neurons and directions: what they promote through the unembedding, and where they fire.

The direct logit effect of an MLP neuron is its output weight read through the final norm's gain and the
unembedding (as in Geva et al., "Transformer Feed-Forward Layers Build Predictions by Promoting Concepts
in the Vocabulary Space", https://arxiv.org/abs/2203.14680): the tokens whose logits its firing raises
and lowers, ignoring the norm's input-dependent scale.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ShoestringError
from ..store.stats import TopK


def neuron_direction(lm, layer: int, neuron: int) -> torch.Tensor:
    """The residual-stream direction ``[d_model]`` an MLP neuron writes (its column of the down projection)."""
    lm.resolve(f"blocks.{layer}.hook_resid_post")  # layer range, with the usual message
    down = lm.anatomy.block(layer).down
    if down is None:
        raise ShoestringError(f"layer {layer} has no single neuron site (mixture of experts)", "use a residual direction instead")
    d_mlp = lm.anatomy.d_mlp
    if not 0 <= neuron < d_mlp:
        raise ShoestringError(f"neuron {neuron} is out of range", f"layer {layer} has {d_mlp} neurons: 0 to {d_mlp - 1}")
    w = down.weight
    return (w[:, neuron] if isinstance(down, nn.Linear) else w[neuron]).detach().float()  # Conv1D: [d_mlp, d_model]


@torch.no_grad()
def direct_logit_effect(lm, direction: torch.Tensor, k: int = 10) -> dict:
    """Tokens a residual ``direction`` ``[d_model]`` promotes and suppresses: ``W_U (g * direction)``,
    with ``g`` the final norm's gain (centred first for LayerNorm)."""
    d = direction.to(lm.device, torch.float32)
    if d.ndim != 1 or d.shape[0] != lm.anatomy.d_model:
        raise ShoestringError(f"a direction must have shape [{lm.anatomy.d_model}], not {list(d.shape)}", "pass one residual vector")
    norm = lm.anatomy.final_norm
    if isinstance(norm, nn.LayerNorm):
        d = d - d.mean()
    gain = getattr(norm, "weight", None)
    if gain is not None:
        g = gain.float()
        if "gemma" in type(norm).__name__.lower():  # Gemma's RMSNorm scales by (1 + weight)
            g = 1 + g
        d = d * g
    effect = lm.anatomy.unembed.weight.float() @ d  # [d_vocab]
    decode = lm.tokenizer.decode if lm.tokenizer is not None else str
    top, bottom = effect.topk(k), (-effect).topk(k)
    return {"promotes": [(decode([int(i)]), round(float(v), 4)) for v, i in zip(top.values, top.indices)],
            "suppresses": [(decode([int(i)]), round(float(-v), 4)) for v, i in zip(bottom.values, bottom.indices)]}


@torch.no_grad()
def top_activating(lm, contexts, hook: str, unit: int | None = None, direction: torch.Tensor | None = None,
                   k: int = 10, window: int = 8, bins: int = 30) -> dict:
    """Stream ``contexts`` (token id tensors ``[batch, T]``) and keep the ``k`` positions where ``hook``'s
    ``unit`` (a neuron / column) or its projection on ``direction`` is largest, with a histogram of all values."""
    spec = lm.resolve(hook)[0]
    if (unit is None) == (direction is None):
        raise ShoestringError("give exactly one of unit= and direction=", "a neuron index, or a residual direction")
    top, values, kept = TopK.empty(1, k), [], []
    seen = 0
    for ids in contexts:
        _, acts = lm.run_with_cache(ids.to(lm.device), [spec.name], device="cpu")
        x = acts[spec.name].float().flatten(2)  # [batch, T, width]
        if unit is not None and not 0 <= unit < x.shape[-1]:
            raise ShoestringError(f"unit {unit} is out of range", f"{spec.name} has {x.shape[-1]} units: 0 to {x.shape[-1] - 1}")
        v = x[..., unit] if unit is not None else x @ direction.float().cpu()  # [batch, T]
        top.update(v.reshape(-1, 1), first_token=seen)
        values.append(v.reshape(-1))
        kept.append(ids.cpu())
        seen += v.numel()
    if not kept:
        raise ShoestringError("no contexts to read", "pass at least one batch of token ids")
    allv, tokens = torch.cat(values), torch.cat([t.reshape(-1) for t in kept])
    T = kept[0].shape[1]
    decode = lm.tokenizer.decode if lm.tokenizer is not None else (lambda ids: " ".join(map(str, ids)))
    rows = []
    for value, index in zip(top.values[0].tolist(), top.index[0].tolist()):
        if index < 0:
            continue
        start = max(index - window, (index // T) * T)
        rows.append({"value": round(value, 4), "token": decode([int(tokens[index])]),
                     "context": decode(tokens[start:index].tolist()), "token_index": index,
                     # the window token by token with the unit's value at each (for highlighting)
                     "tokens": [decode([int(t)]) for t in tokens[start : index + 1]],
                     "values": [round(float(v), 4) for v in allv[start : index + 1]]})
    hist = torch.histc(allv, bins=bins, min=float(allv.min()), max=float(allv.max()))
    return {"top": rows, "histogram": {"counts": hist.int().tolist(), "min": float(allv.min()), "max": float(allv.max())},
            "mean": float(allv.mean()), "fraction_positive": float((allv > 0).float().mean())}


@torch.no_grad()
def token_activations(lm, text: str, hook: str, unit: int | None = None,
                      direction: torch.Tensor | None = None) -> tuple[list[str], list[float]]:
    """``(tokens, values)``: ``hook``'s ``unit`` (a neuron / column) or its projection on ``direction`` at
    every token of ``text`` (for token highlighting)."""
    spec = lm.resolve(hook)[0]
    if (unit is None) == (direction is None):
        raise ShoestringError("give exactly one of unit= and direction=", "a neuron index, or a residual direction")
    enc = lm.tokenize(text)
    _, acts = lm.run_with_cache(enc, [spec.name], device="cpu")
    x = acts[spec.name][0].float().flatten(1)  # [T, width]
    if unit is not None and not 0 <= unit < x.shape[-1]:
        raise ShoestringError(f"unit {unit} is out of range", f"{spec.name} has {x.shape[-1]} units: 0 to {x.shape[-1] - 1}")
    v = x[:, unit] if unit is not None else x @ direction.float().cpu()
    decode = lm.tokenizer.decode if lm.tokenizer is not None else (lambda ids: str(ids[0]))
    return [decode([int(t)]) for t in enc["input_ids"][0]], [round(float(a), 4) for a in v]
