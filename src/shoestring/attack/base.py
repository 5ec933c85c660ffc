"""What every attack shares: a behaviour to elicit, one attempt's record, and the meter of compute spent.

An attack is a dataclass with one method to override, ``attack(lm, behaviours) -> list[Attempt]`` (one attempt per
behaviour, or per behaviour and step for searches that record a trace). Judges are not part of an attack: the suite
(:mod:`shoestring.attack.suite`) judges every attempt's response with every judge, so attacks compare on equal terms.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch


@dataclass
class Behaviour:
    """One request to elicit. ``target`` is the affirmative opening GCG optimises for ("Sure, here is ...")."""

    id: str
    goal: str
    target: str = ""
    category: str = "uncategorised"
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Compute:
    """Compute spent on one attempt: optimisation steps, model forward passes (target model, attacker and helper
    models counted apart), tokens through the target model, seconds and peak memory above the start (bytes)."""

    steps: int = 0
    forward_passes: int = 0
    tokens: int = 0
    seconds: float = 0.0
    peak_memory_bytes: int = 0
    other_forward_passes: int = 0  # attacker / translator models (PAIR, translation)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Attempt:
    """One attack on one behaviour: the prompt the target saw, its response, the compute spent and, for searches,
    ``trace``: rows ``{"step", "loss", "suffix", "response", "forward_passes", "seconds"}`` at each check."""

    behaviour: Behaviour
    attack: str
    prompt: str
    response: str = ""
    compute: Compute = field(default_factory=Compute)
    trace: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # attack-specific: the suffix, the template name, ...

    def to_dict(self) -> dict:
        d = asdict(self)
        d["behaviour"] = self.behaviour.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Attempt:
        return cls(behaviour=Behaviour(**d["behaviour"]), attack=d["attack"], prompt=d["prompt"],
                   response=d.get("response", ""), compute=Compute(**d.get("compute", {})),
                   trace=list(d.get("trace", [])), extra=dict(d.get("extra", {})))


@dataclass
class Attack:
    """The base of every attack. ``name`` is its registry name; ``white_box`` says whether it reads gradients."""

    name = "base"
    white_box = False

    def attack(self, lm, behaviours: list[Behaviour]) -> list[Attempt]:
        raise NotImplementedError


class ForwardCounter:
    """Counts forward passes and tokens through ``model`` while active (a forward pre-hook, always removed)."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.passes, self.tokens, self._handle = model, 0, 0, None

    def _hook(self, module, args, kwargs):
        self.passes += 1
        x = kwargs.get("input_ids")
        if x is None:
            x = kwargs.get("inputs_embeds")
        if x is None and args:
            x = args[0]
        if isinstance(x, torch.Tensor) and x.dim() >= 2:
            self.tokens += int(x.shape[0] * x.shape[1])

    def __enter__(self) -> ForwardCounter:
        self._handle = self.model.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


@contextmanager
def metered(lm, compute: Compute, other_models=()):
    """``with metered(lm, attempt.compute): ...`` adds the block's forward passes, tokens, seconds and peak memory
    (the largest peak seen, not a sum) to ``compute``."""
    from ..kv.measure import peak_memory

    counters = [ForwardCounter(lm.model)] + [ForwardCounter(getattr(m, "model", m)) for m in other_models]
    t0 = time.perf_counter()
    with peak_memory(lm.device) as peak:
        for c in counters:
            c.__enter__()
        try:
            yield compute
        finally:
            for c in counters:
                c.__exit__()
    compute.seconds += time.perf_counter() - t0
    compute.forward_passes += counters[0].passes
    compute.tokens += counters[0].tokens
    compute.other_forward_passes += sum(c.passes for c in counters[1:])
    compute.peak_memory_bytes = max(compute.peak_memory_bytes, int(peak["peak_bytes"]))
