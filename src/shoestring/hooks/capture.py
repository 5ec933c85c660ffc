"""``with lm.capture(names) as acts:`` keeps the activations of the forward passes run inside."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import ShoestringError
from .attention_tap import pattern_from_qk
from .points import PointSpec
from .registry import HookScope


class Capture(HookScope, Mapping):
    """Activations of the hook points asked for, per forward call.

    Parameters
    ----------
    lm
        The :class:`shoestring.LM`.
    names
        Hook point names or glob patterns (``"blocks.*.hook_resid_post"``).
    detach
        Cut the graph (default). ``detach=False`` keeps gradients flowing through the captured
        tensors, for attribution or adversarial search.
    device, dtype
        Move / cast what is kept (e.g. ``device="cpu", dtype=torch.float16``) to bound memory.
    pos
        Keep only these positions (an int, a slice or an index tensor), e.g. ``pos=-1``.

    Notes
    -----
    ``acts[name]`` is the tensor of a single forward pass; when several ran inside the block
    (``generate``: prefill then one per new token), they are joined along the position axis.
    ``acts.calls(name)`` gives them one by one (the attention pattern of ``generate`` grows in both
    query and key, so it is only available that way).

    Examples
    --------
    >>> with lm.capture("blocks.*.hook_resid_post", device="cpu") as acts:  # doctest: +SKIP
    ...     lm.forward("The capital of France is")
    >>> acts["blocks.3.hook_resid_post"].shape  # doctest: +SKIP
    torch.Size([1, 6, 576])
    """

    def __init__(self, lm, names, *, detach: bool = True, device=None, dtype=None, pos=None):
        self.lm = lm
        self.specs: list[PointSpec] = lm.resolve(names)
        self.detach, self.device, self.dtype, self.pos = detach, device, dtype, pos
        self._data: dict[str, list[torch.Tensor]] = {s.name: [] for s in self.specs}
        super().__init__()

    def _attach_all(self) -> None:
        for spec in self.specs:
            self._removers.append(self.lm._registry.add(spec, self._callback(spec), edit=False))

    # -- storing ---------------------------------------------------------------------------
    def _keep(self, spec: PointSpec, act: torch.Tensor) -> None:
        if self.pos is not None:
            index = [slice(None)] * act.ndim
            index[spec.pos_dim] = self.pos if not isinstance(self.pos, int) else slice(self.pos, self.pos + 1 or None)
            act = act[tuple(index)]
        if self.detach:
            act = act.detach()
        if self.device is not None or self.dtype is not None:
            act = act.to(device=self.device, dtype=self.dtype)
        self._data[spec.name].append(act)

    def _callback(self, spec: PointSpec):
        if spec.where != "attn":
            return lambda raw: self._keep(spec, spec.read(raw))
        kind = spec.name.rsplit(".", 1)[-1]

        def on_attention(module, query, key, mask, kwargs, out):
            q_len = query.shape[-2]
            if kind == "hook_rot_q":  # [batch, head, q, d] -> [batch, pos, head, d]
                self._keep(spec, query.transpose(1, 2))
            elif kind == "hook_rot_k":  # only the keys of this call's positions
                self._keep(spec, key[:, :, -q_len:].transpose(1, 2))
            else:
                weights = out[1] if isinstance(out, tuple) and len(out) > 1 else None
                if not (isinstance(weights, torch.Tensor) and weights.ndim == 4):
                    weights = pattern_from_qk(module, query, key, mask, kwargs)
                self._keep(spec, weights)

        return on_attention

    # -- reading ---------------------------------------------------------------------------
    def calls(self, name: str) -> list[torch.Tensor]:
        """The tensors of ``name``, one per forward call."""
        if name not in self._data:
            raise ShoestringError(f"'{name}' was not captured", f"captured: {', '.join(list(self._data)[:6])}")
        return self._data[name]

    def __getitem__(self, name: str) -> torch.Tensor:
        calls = self.calls(name)
        if not calls:
            raise ShoestringError(f"nothing captured at '{name}'", "run a forward pass inside the `with` block")
        if len(calls) == 1:
            return calls[0]
        spec = next(s for s in self.specs if s.name == name)
        if spec.pos_dim != 1 or len({c.shape[0] for c in calls}) != 1:
            raise ShoestringError(
                f"'{name}' holds {len(calls)} forward calls that cannot be joined along positions",
                f"use acts.calls('{name}')",
            )
        return torch.cat(calls, dim=1)

    def __contains__(self, name) -> bool:
        return name in self._data

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def nbytes(self) -> int:
        """Bytes held by the captured tensors."""
        return sum(t.numel() * t.element_size() for calls in self._data.values() for t in calls)

    def clear(self) -> None:
        """Drop what was captured so far (the hooks stay)."""
        for calls in self._data.values():
            calls.clear()
