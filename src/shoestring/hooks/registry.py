"""One dispatcher hook per (module, site), shared by all open captures and edits.

Edits run before captures at the same point, whatever the order the contexts were opened in, so a
capture always sees the edited activation. A dispatcher is removed as soon as no context uses it:
after every ``with`` block the model has exactly the hooks it had before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .attention_tap import add_tap
from .points import PointSpec


@dataclass
class HookContext:
    """What an edit function is told besides the activation.

    Attributes
    ----------
    name
        The hook point's name.
    layer
        Its block, or ``None``.
    call
        How many times this point has run inside the context (0 = first forward; in ``generate``,
        0 is the prefill and 1, 2, ... the decode steps).
    """

    name: str
    layer: int | None
    call: int = 0


@dataclass
class _Slot:
    handle: object
    edits: list = field(default_factory=list)
    captures: list = field(default_factory=list)
    post: list = field(default_factory=list)  # after captures: changes that belong to a later point

    def lists(self):
        return (self.edits, self.captures, self.post)


def _first_input(args, kwargs):
    if args:
        return args[0]
    return kwargs.get("hidden_states")


class HookRegistry:
    """Owns the dispatcher hooks of one model."""

    def __init__(self, model):
        self.model = model
        self._slots: dict[tuple[int, str], _Slot] = {}
        self.pending: dict = {}  # resid_mid deltas waiting for the MLP branch output

    # -- public ---------------------------------------------------------------------------
    def add(self, spec: PointSpec, fn: Callable, edit: bool, post: bool = False) -> Callable[[], None]:
        """Attach ``fn(raw_or_tensors)`` at ``spec``; returns its remover.

        ``edit`` callbacks run first and may return a new tensor; then captures; then ``post`` callbacks,
        which may also return a new tensor (the ``hook_resid_mid`` delta, which captures at this point
        must not see).
        """
        if spec.where == "attn":
            impl = getattr(spec.module, "config", self.model.config)._attn_implementation or "eager"
            return add_tap(spec.module, impl, fn)
        slot = self._slot(spec.module, spec.where)
        target = slot.post if post else (slot.edits if edit else slot.captures)
        target.append(fn)
        untrack = None
        if spec.track is not None:
            block, box = spec.track
            tracker = PointSpec(spec.name + "#shape", spec.layer, block, "in", "", lambda r: r, None)
            untrack = self.add(tracker, lambda raw: box.__setitem__("shape", raw.shape[:2]), edit=True)

        def remove():
            if untrack is not None:
                untrack()
            if fn in target:
                target.remove(fn)
            if not any(slot.lists()):
                slot.handle.remove()
                self._slots.pop((id(spec.module), spec.where), None)

        return remove

    def active(self) -> int:
        return len(self._slots)

    # -- dispatch -------------------------------------------------------------------------
    def _slot(self, module, where) -> _Slot:
        key = (id(module), where)
        if key in self._slots:
            return self._slots[key]
        slot = _Slot(handle=None)
        if where == "in":

            def pre_hook(mod, args, kwargs):
                raw = _first_input(args, kwargs)
                new = self._run(slot, raw)
                if new is raw:
                    return None
                if args:
                    return (new, *args[1:]), kwargs
                return args, {**kwargs, "hidden_states": new}

            slot.handle = module.register_forward_pre_hook(pre_hook, with_kwargs=True)
        elif where == "logits":

            def logits_hook(mod, args, output):
                raw = output.logits
                new = self._run(slot, raw)
                if new is not raw:
                    output["logits"] = new
                return output

            slot.handle = module.register_forward_hook(logits_hook)
        else:
            index = 1 if where == "out1" else 0

            def hook(mod, args, output):
                is_tuple = isinstance(output, tuple)
                raw = output[index] if is_tuple else output
                new = self._run(slot, raw)
                if new is raw:
                    return None
                if not is_tuple:
                    return new
                return (*output[:index], new, *output[index + 1 :])

            slot.handle = module.register_forward_hook(hook)
        self._slots[key] = slot
        return slot

    @staticmethod
    def _run(slot: _Slot, raw: torch.Tensor) -> torch.Tensor:
        for fn in slot.edits:
            out = fn(raw)
            if out is not None:
                raw = out
        for fn in slot.captures:
            fn(raw)
        for fn in slot.post:
            out = fn(raw)
            if out is not None:
                raw = out
        return raw


class HookScope:
    """Base of :class:`Capture` and :class:`Edit`: attach in ``__enter__``, detach everything in ``__exit__``.

    A subclass implements :meth:`_attach_all`, which calls ``self._removers.append(...)`` for each
    hook it adds. If attaching fails halfway, what was attached is removed before the error leaves.
    """

    def __init__(self):
        self._removers: list = []

    def _attach_all(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self):
        try:
            self._attach_all()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def _close(self) -> None:
        while self._removers:
            self._removers.pop()()
