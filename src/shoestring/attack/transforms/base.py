"""The base of every black-box prompt transform: ``apply(goal) -> the prompt the target model sees``.

A transform is a dataclass whose fields are its settings; ``name`` is its registry name. It rewrites the request
only (no model of the target is needed), so one transform serves every target model. Two optional hooks:
``restore(response)`` undoes the transform on the target's answer before judging (translation back into English),
and ``other_models`` names the helper models a transform runs, so an attack meters them apart from the target
(``metered(lm, compute, other_models=t.other_models)`` counts them as ``other_forward_passes``).

>>> from shoestring.attack.transforms import make_transform
>>> make_transform("rot13").apply("Explain how tides work")   # doctest: +ELLIPSIS
'You have received a ROT13-encoded request:\\nRkcynva ubj gvqrf jbex\\n...'
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ShoestringError, nearest
from ...registry import add

TRANSFORMS: dict[str, type[Transform]] = {}


def register(cls: type[Transform]) -> type[Transform]:
    """Class decorator: ``TRANSFORMS[cls.name] = cls`` (a duplicate name raises)."""
    add(TRANSFORMS, cls.name, cls, "transform")
    return cls


@dataclass
class Transform:
    """A black-box rewrite of the request. Override :meth:`apply`."""

    name = "base"

    def apply(self, goal: str) -> str:
        raise NotImplementedError

    def restore(self, response: str) -> str:
        """The target's response made readable for the judges (unchanged unless the transform says otherwise)."""
        return response

    @property
    def label(self) -> str:
        """What attempts record as the attack's variant, e.g. ``"template:aim"`` (the registry name by default)."""
        return self.name

    @property
    def other_models(self) -> tuple:
        """Helper models whose forward passes count as ``other_forward_passes`` (a translator, ...)."""
        return ()

    def __call__(self, goals):
        """``apply`` on one goal (a string back) or several (a list back)."""
        if isinstance(goals, str):
            return self.apply(goals)
        return [self.apply(g) for g in goals]


def make_transform(name: str, **settings) -> Transform:
    """A transform by registry name, e.g. ``make_transform("template", template="aim")``."""
    if name not in TRANSFORMS:
        hint = nearest(name, TRANSFORMS)
        raise ShoestringError(f"unknown transform '{name}'", f"use one of {', '.join(TRANSFORMS)}"
                              + (f" (did you mean {hint[0]}?)" if hint else ""))
    try:
        return TRANSFORMS[name](**settings)
    except TypeError as e:
        raise ShoestringError(f"bad settings for transform '{name}' ({e})",
                              f"see help(shoestring.attack.transforms.{TRANSFORMS[name].__name__})")
