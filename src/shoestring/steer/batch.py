"""Many steering settings in one batched ``generate``: every row of the batch gets its own vector and scale
(or none), so a whole dose-response sweep, its random controls and the unsteered baseline run as one
batch instead of one ``generate`` per setting (repeng and steering-vectors set one control per model, so
a sweep is a loop of calls there). On a CPU a batch of 64 rows decodes about twice the tokens per second of
a batch of 16 (``bench/steer.py`` measures it), because each decode step reads the weights once.

    >>> rows = SteerRows.sweep(lm, layer=8, settings=[(None, 0.0), (d, 4.0), (d.random_like(1), 4.0)],
    ...                        n_prompts=len(prompts))                                  # doctest: +SKIP
    >>> outs = generate(lm, prompts * 3, rows, max_new_tokens=24)                       # doctest: +SKIP

Each row's result equals that row steered alone with :class:`~shoestring.steer.apply.Steer` (same edit,
:func:`~shoestring.steer.apply.steer_edit`), up to float rounding of the larger matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ShoestringError
from .apply import check_options, skipped, steer_edit


@dataclass
class SteerRows:
    """Context manager: row ``b`` of every batch gets ``scales[b] * vectors[b]`` (``mode`` as in
    :class:`~shoestring.steer.apply.Steer`) at ``hook``; rows whose vector is zero are left alone."""

    lm: object
    hook: str
    vectors: torch.Tensor  # [batch, d_model]
    scales: torch.Tensor  # [batch]
    mode: str = "add"
    positions: str = "all"
    relative: bool = False
    offsets: torch.Tensor | None = None  # set by generate; unused (no position sequences here)
    _edit: object = field(default=None, repr=False)

    def __post_init__(self):
        check_options(self.mode, self.positions)
        if self.vectors.ndim != 2 or self.scales.shape != self.vectors.shape[:1]:
            raise ShoestringError(f"vectors {tuple(self.vectors.shape)} and scales {tuple(self.scales.shape)} do not match",
                                  "give one [d_model] vector and one scale per row")
        d = self.lm.anatomy.d_model
        if self.vectors.shape[1] != d:
            raise ShoestringError(f"the vectors have width {self.vectors.shape[1]} but the model's residual stream has {d}",
                                  "use directions fitted on this model (same d_model)")
        self.lm.resolve(self.hook)

    @classmethod
    def sweep(cls, lm, layer: int, settings: list, n_prompts: int, **options) -> "SteerRows":
        """Rows for ``settings`` = ``[(direction or None, scale), ...]``, each repeated for ``n_prompts``
        consecutive rows (the prompts are passed as ``prompts * len(settings)``). Every direction must
        have a single vector at ``layer`` and the same hook."""
        hooks = {dirn.hook_name(layer) for dirn, _ in settings if dirn is not None}
        if len(hooks) != 1:
            raise ShoestringError(f"the settings steer at {sorted(hooks) or 'no hook'}", "batch settings of one hook together")
        vecs, scales = [], []
        for dirn, scale in settings:
            if dirn is not None and (layer not in dirn.vectors or dirn.vectors[layer].ndim != 1):
                raise ShoestringError(f"a direction has no single vector at layer {layer}", "batch [d_model] directions only")
            v = dirn.vectors[layer] if dirn is not None else None
            vecs += [v if v is not None else torch.zeros(lm.anatomy.d_model)] * n_prompts
            scales += [float(scale)] * n_prompts
        return cls(lm, hooks.pop(), torch.stack(vecs), torch.tensor(scales), **options)

    def _fn(self):
        def edit(act: torch.Tensor, ctx) -> torch.Tensor | None:
            if skipped(self.positions, act):
                return None
            if act.shape[0] != self.vectors.shape[0]:
                raise ShoestringError(f"a batch of {act.shape[0]} rows met steering for {self.vectors.shape[0]}",
                                      "pass prompts * len(settings) to generate")
            return steer_edit(act, self.vectors.to(act.device, act.dtype), self.scales, self.mode, self.relative)

        return edit

    def __enter__(self):
        self._edit = self.lm.edit({self.hook: self._fn()})
        self._edit.__enter__()
        return self

    def __exit__(self, *exc):
        return self._edit.__exit__(*exc)
