"""Confidence-based early exit at decode time, as an intervention: ``with EarlyExit(model, threshold=0.9): ...``.

At each checked layer of a decode step, a confidence is computed from the hidden state; once it reaches the
threshold the remaining layers are skipped for that token and the final norm and LM head read the exited state
(CALM, Schuster et al. 2022, https://arxiv.org/abs/2207.07061). Two confidence measures from CALM:

- ``softmax``: the top probability of the LM head read at that layer (costs one LM-head product per check, which
  on a small model with a large vocabulary is several layers' worth: check few layers);
- ``saturation``: the cosine between the block's input and output hidden states (free).

Skipped layers still get keys and values for the token, computed from the exited hidden state (CALM's state
propagation: their norm, k and v projections and rotary embedding only), so later tokens attend over a full
cache. Prefill (more than one query position) always runs every layer. A batch exits only when every row is
confident. The hooks are always removed; ``exits`` records the exit layer of every decode step.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch

from ..errors import ShoestringError
from ..models.anatomy import detect
from .importance.base import blocks_and_shape

RULES = ("softmax", "saturation")


def _propagate_kv(block, hidden, kwargs) -> None:
    """Write the keys and values ``block`` would store for ``hidden`` (its attention input before the norm)."""
    cache = kwargs.get("past_key_values")
    if cache is None:
        return
    attn = block.self_attn
    x = block.input_layernorm(hidden)
    d = attn.head_dim
    k = attn.k_proj(x).view(*x.shape[:-1], -1, d).transpose(1, 2)
    v = attn.v_proj(x).view(*x.shape[:-1], -1, d).transpose(1, 2)
    if getattr(attn, "k_norm", None) is not None:
        k = attn.k_norm(k)
    cos, sin = kwargs["position_embeddings"]
    _, k = sys.modules[type(attn).__module__].apply_rotary_pos_emb(k, k, cos, sin)
    cache.update(k, v, attn.layer_idx)


@dataclass
class EarlyExit:
    """Parameters
    ----------
    model
        A llama-layout transformers model.
    threshold
        Exit once the confidence is at least this (``softmax``: a probability; ``saturation``: a cosine).
    rule
        ``softmax`` or ``saturation``.
    layers
        The layers after which confidence is checked (default: every 4th layer from the middle on, the last
        excluded).
    """

    model: object
    threshold: float = 0.9
    rule: str = "softmax"
    layers: list[int] | None = None
    exits: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ShoestringError(f"unknown early-exit rule '{self.rule}'", f"use one of: {', '.join(RULES)}")
        if not 0.0 < self.threshold <= 1.0:
            raise ShoestringError(f"early-exit threshold {self.threshold} is outside (0, 1]", "give e.g. 0.9")

    def __enter__(self):
        blocks = blocks_and_shape(self.model)[0]
        anatomy = detect(self.model)
        L = len(blocks)
        check = sorted(set(self.layers)) if self.layers is not None else list(range(L // 2, L - 1, 4))
        if not check or any(not 0 <= i < L - 1 for i in check):
            raise ShoestringError(f"early-exit layers {self.layers} must lie in 0..{L - 2}", "name layers before the last")
        self._check, self._blocks, self._state = set(check), blocks, {"exited": None}
        norm, head = anatomy.final_norm, anatomy.unembed

        def confidence(before, after):
            if self.rule == "saturation":
                return torch.nn.functional.cosine_similarity(before[:, -1].float(), after[:, -1].float(), dim=-1).min()
            h = norm(after[:, -1]) if norm is not None else after[:, -1]
            return head(h).float().softmax(-1).max(-1).values.min()

        def wrap(i, block):
            orig = block.forward

            def forward(hidden_states, *args, **kwargs):
                state = self._state
                decoding = hidden_states.shape[1] == 1
                if i == 0:
                    state["exited"] = None
                if state["exited"] is not None:
                    _propagate_kv(block, hidden_states, kwargs)
                    return hidden_states
                out = orig(hidden_states, *args, **kwargs)
                h = out[0] if isinstance(out, tuple) else out
                if decoding and i in self._check and float(confidence(hidden_states, h)) >= self.threshold:
                    state["exited"] = i
                    self.exits.append(i)
                elif decoding and i == L - 1:
                    self.exits.append(i)
                return out
            return forward
        for i, b in enumerate(blocks):
            b.forward = wrap(i, b)
        return self

    def __exit__(self, *exc):
        for b in self._blocks:
            vars(b).pop("forward", None)
        return False

    def summary(self) -> dict:
        """Decode steps seen, mean exit layer, and the share of steps that exited before the last layer."""
        L = len(self._blocks) if hasattr(self, "_blocks") else None
        n = len(self.exits)
        return {"steps": n, "mean_exit_layer": sum(self.exits) / n if n else None,
                "early_share": sum(e < L - 1 for e in self.exits) / n if n and L else None, "layers": L}
