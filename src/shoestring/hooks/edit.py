"""``with lm.edit({name: fn}):`` replaces or adds to activations during the forward passes inside."""

from __future__ import annotations

import inspect
from typing import Callable, Mapping

import torch

from ..errors import ShoestringError
from .points import PointSpec, _replace, _same
from .registry import HookContext, HookScope

EditFn = Callable[..., torch.Tensor | None]


def _arity(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def replace_with(value: torch.Tensor) -> EditFn:
    """An edit that replaces the activation with ``value`` (broadcast to its shape)."""
    return lambda act: value.to(act.dtype).to(act.device).expand_as(act).clone()


class Edit(HookScope):
    """Change activations while the block is open; every hook is removed on exit, even on error.

    Parameters
    ----------
    lm
        The :class:`shoestring.LM`.
    edits
        ``{name_or_glob: edit}``. An edit is a function ``fn(act)`` or ``fn(act, ctx)`` that returns
        the new activation (or changes ``act`` in place and returns ``None``), or a tensor / number
        that is *added* (a steering vector). ``ctx`` is a :class:`HookContext` (name, layer, call).

    Examples
    --------
    >>> v = torch.randn(576)  # doctest: +SKIP
    >>> with lm.edit({"blocks.10.hook_resid_post": 4.0 * v}):  # doctest: +SKIP
    ...     lm.generate("I think that", max_new_tokens=20)
    >>> with lm.edit({"blocks.3.attn.hook_z": lambda z: z.index_fill(2, torch.tensor([5]), 0)}):  # doctest: +SKIP
    ...     lm.forward("ablate head 3.5")
    """

    def __init__(self, lm, edits: Mapping[str, EditFn | torch.Tensor | float]):
        self.lm = lm
        self.plan: list[tuple[PointSpec, EditFn | torch.Tensor | float]] = []
        for pattern, fn in edits.items():
            for spec in lm.resolve(pattern):
                if spec.write is None:
                    raise ShoestringError(
                        f"'{spec.name}' can be captured but not edited",
                        "edit attn.hook_z (per head), attn.hook_q/k/v or hook_attn_out instead",
                    )
                self.plan.append((spec, fn))
        super().__init__()

    def _attach_all(self) -> None:
        for spec, fn in self.plan:
            self._attach(spec, fn)

    def _close(self) -> None:
        super()._close()
        self.lm._registry.pending.clear()

    def _attach(self, spec: PointSpec, fn) -> None:
        reg = self.lm._registry
        ctx = HookContext(spec.name, spec.layer)
        two = callable(fn) and _arity(fn) >= 2

        def apply(act: torch.Tensor) -> torch.Tensor:
            if not callable(fn):
                return act + torch.as_tensor(fn, dtype=act.dtype, device=act.device)
            out = fn(act, ctx) if two else fn(act)
            return act if out is None else out

        if spec.propagate is None:

            def edit(raw):
                act = spec.read(raw)
                new = apply(act)
                ctx.call += 1
                return raw if new is act else spec.write(raw, new)

            self._removers.append(reg.add(spec, edit, edit=True))
            return
        # hook_resid_mid: the edit must reach the residual, not only the MLP input. Feed the edited
        # stream to the MLP branch and add the same delta to that branch's output.
        key = (id(self), spec.name)

        def edit_mid(raw):
            act = spec.read(raw)  # [batch, pos, d_model], also where the MLP sees [batch * pos, d]
            old = act.clone()
            new = apply(act)
            ctx.call += 1
            reg.pending[key] = new - old
            return spec.write(raw, new)

        def add_delta(raw):
            delta = reg.pending.pop(key, None)
            return raw if delta is None else raw + delta.reshape(raw.shape)

        out_spec = PointSpec(spec.name + "#branch", spec.layer, spec.propagate, "out", "", _same, _replace)
        self._removers.append(reg.add(spec, edit_mid, edit=True))
        self._removers.append(reg.add(out_spec, add_delta, edit=True, post=True))
