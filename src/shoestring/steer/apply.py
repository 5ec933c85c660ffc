"""Apply a direction while the model runs: ``with Steer(lm, direction, scale=8):``, then generate or score.

Modes (``v`` the direction at a layer, ``u = v / ||v||``, ``x`` the residual ``[batch, pos, d]``):

- ``add``: ``x + scale * v`` (CAA, ActAdd); with ``relative=True``: ``x + scale * ||x|| * u`` (the scale is a
  fraction of each token's residual norm, comparable across layers);
- ``ablate``: ``x - (x . u) u`` (directional ablation, Arditi et al. 2024, https://arxiv.org/abs/2406.11717;
  ``scale`` is ignored);
- ``ablate_add``: ablate, then add ``scale * u`` (the projection is set to ``scale`` for every token);
- ``clamp``: the same as ``ablate_add`` (kept as the name users expect); to clamp or flip an SAE latent
  see :class:`~shoestring.steer.feature_edit.FeatureEdit`.

Positions: ``all``, ``prompt`` (the prefill) or ``generated`` (decode steps). Inside ``generate`` with the
KV cache the prefill is the forward whose length is > 1 and each decode step has length 1, so a one-token
prompt counts as generated. ActAdd's position sequences go at the prompt's first real tokens; call
:func:`generate` (it tells the hooks where left padding ends) or pass ``offsets``.

Every hook is removed on exit, also after an exception (the :class:`~shoestring.hooks.Edit` underneath).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ShoestringError
from .direction import Direction

MODES = ("add", "ablate", "ablate_add", "clamp")
POSITIONS = ("all", "prompt", "generated")


@dataclass
class Steer:
    lm: object
    direction: Direction
    scale: float = 4.0
    layers: tuple[int, ...] | None = None
    mode: str = "add"
    positions: str = "all"
    relative: bool = False
    offsets: torch.Tensor | None = None  # [batch] first real token per row (left padding)
    _edit: object = field(default=None, repr=False)

    def __post_init__(self):
        check_options(self.mode, self.positions)
        self.direction.check_model(self.lm)
        layers = self.direction.layers if self.layers is None else list(self.layers)
        missing = [layer for layer in layers if layer not in self.direction.vectors]
        if missing:
            raise ShoestringError(f"the direction has no vector for layer(s) {missing}", f"it has layers {self.direction.layers}")
        self.layers = tuple(layers)

    def _fn(self, layer: int):
        v = self.direction.vectors[layer]
        seq = v.ndim == 2

        def edit(act: torch.Tensor, ctx) -> torch.Tensor | None:
            prefill = act.shape[1] > 1
            if skipped(self.positions, act):
                return None
            vec = v.to(act.device, act.dtype)
            if seq:
                return _add_sequence(act, self.scale * vec, self.offsets) if prefill else None
            return steer_edit(act, vec, self.scale, self.mode, self.relative)

        return edit

    def __enter__(self):
        self._edit = self.lm.edit({self.direction.hook_name(layer): self._fn(layer) for layer in self.layers})
        self._edit.__enter__()
        return self

    def __exit__(self, *exc):
        return self._edit.__exit__(*exc)


def check_options(mode: str, positions: str, modes: tuple[str, ...] = MODES, what: str = "steering mode") -> None:
    """One line for an unknown mode or positions (every intervention checks its options with this)."""
    if mode not in modes:
        raise ShoestringError(f"unknown {what} '{mode}'", f"use one of {', '.join(modes)}")
    if positions not in POSITIONS:
        raise ShoestringError(f"unknown positions '{positions}'", f"use one of {', '.join(POSITIONS)}")


def skipped(positions: str, act: torch.Tensor) -> bool:
    """Whether this forward is outside ``positions``: the prefill has length > 1, a decode step length 1."""
    prefill = act.shape[1] > 1
    return (positions == "prompt" and not prefill) or (positions == "generated" and prefill)


def steer_edit(act: torch.Tensor, vec: torch.Tensor, scale, mode: str, relative: bool) -> torch.Tensor:
    """The edit of every mode on ``act [batch, pos, d]``: ``vec`` is ``[d]`` (one direction) or ``[batch, d]``
    (one per row; zero rows are left alone), ``scale`` a number or ``[batch]``."""
    if vec.ndim == 2:
        vec = vec[:, None, :]  # [batch, 1, d]
    if isinstance(scale, torch.Tensor):
        scale = scale.to(act.device, act.dtype).reshape(-1, 1, 1)  # [batch, 1, 1]
    u = vec / vec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if mode == "add":
        return act + (scale * act.norm(dim=-1, keepdim=True) * u if relative else scale * vec)
    out = act - (act * u).sum(-1, keepdim=True) * u
    return out if mode == "ablate" else out + scale * u


def _add_sequence(act: torch.Tensor, seq: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
    """Add ``seq [n, d]`` at positions ``offsets[b] .. offsets[b] + n`` of each row (clipped to the length)."""
    out = act.clone()
    n = min(seq.shape[0], act.shape[1])
    for b in range(act.shape[0]):
        start = int(offsets[b]) if offsets is not None else 0
        m = min(n, act.shape[1] - start)
        if m > 0:
            out[b, start:start + m] += seq[:m]
    return out


def generate(lm, prompts, steer: Steer | None = None, max_new_tokens: int = 32, *, do_sample: bool = False,
             seed: int = 0, chat: bool = False, **kwargs) -> list[str]:
    """:meth:`LM.generate <shoestring.LM.generate>` (batched, left padding, KV cache), optionally steered;
    sampling is seeded. The steering hooks are told where each row's left padding ends."""
    if steer is not None:
        mask = lm.tokenize(prompts, chat=chat)["attention_mask"]
        steer.offsets = (mask.shape[1] - mask.sum(1)).cpu()
    if lm.tokenizer.pad_token_id is None:
        kwargs.setdefault("pad_token_id", lm.tokenizer.eos_token_id)
    if do_sample:
        torch.manual_seed(seed)
    with steer if steer is not None else _Null():
        return lm.generate(prompts, max_new_tokens, chat=chat, do_sample=do_sample, **kwargs)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
