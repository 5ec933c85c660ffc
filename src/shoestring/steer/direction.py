"""A steering direction: one residual-stream vector per layer, with where it came from.

Saved as ``direction.safetensors`` (tensors ``layer.{L}`` of shape ``[d_model]``, or ``[n, d_model]`` for
a position sequence such as ActAdd's) and ``direction.json`` (method, model, hook template, metadata),
written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import ShoestringError
from ..runs.atomic import atomic_path, write_json

WEIGHTS, META = "direction.safetensors", "direction.json"


@dataclass
class Direction:
    """``vectors[layer]``: ``[d_model]`` (or ``[n_pos, d_model]``); ``hook`` is a template with ``{layer}``."""

    vectors: dict[int, torch.Tensor]
    method: str = "custom"
    hook: str = "blocks.{layer}.hook_resid_post"
    model: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.vectors:
            raise ShoestringError("a direction needs at least one layer's vector", "fit it on one or more layers")
        self.vectors = {int(k): v.detach().float().cpu() for k, v in self.vectors.items()}
        widths = {v.shape[-1] for v in self.vectors.values()}
        if len(widths) != 1:
            raise ShoestringError(f"the layers' vectors have different widths {sorted(widths)}", "fit every layer on the same model")

    @property
    def layers(self) -> list[int]:
        return sorted(self.vectors)

    @property
    def d_model(self) -> int:
        return next(iter(self.vectors.values())).shape[-1]

    def hook_name(self, layer: int) -> str:
        return self.hook.format(layer=layer)

    def unit(self, layer: int) -> torch.Tensor:
        v = self.vectors[layer]
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def check_model(self, lm) -> None:
        """Refuse a model of another width, or layers it does not have (one line each)."""
        d = lm.anatomy.d_model
        if d != self.d_model:
            raise ShoestringError(f"the direction has width {self.d_model} but the model's residual stream has {d}",
                                  "use a direction fitted on this model (same d_model)")
        for layer in self.layers:
            lm.resolve(self.hook_name(layer))

    def save(self, folder) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file({f"layer.{k}": v.contiguous() for k, v in self.vectors.items()}, str(tmp))
        write_json(folder / META, {"method": self.method, "hook": self.hook, "model": self.model, "layers": self.layers,
                                   "d_model": self.d_model, "meta": self.meta})
        return folder

    @classmethod
    def load(cls, folder) -> "Direction":
        folder = Path(folder)
        if not (folder / WEIGHTS).is_file() or not (folder / META).is_file():
            raise ShoestringError(f"no direction at {folder}", f"a direction folder holds {WEIGHTS} and {META} (Direction.save writes them)")
        try:
            meta = json.loads((folder / META).read_text())
        except json.JSONDecodeError as e:
            raise ShoestringError(f"{folder / META} is not valid JSON ({e})", "save the direction again")
        tensors = load_file(str(folder / WEIGHTS))
        vectors = {int(k.split(".", 1)[1]): v for k, v in tensors.items() if k.startswith("layer.")}
        return cls(vectors, meta.get("method", "custom"), meta.get("hook", "blocks.{layer}.hook_resid_post"),
                   meta.get("model", ""), meta.get("meta", {}))

    def random_like(self, seed: int = 0) -> "Direction":
        """The control: a random direction with the same norm at every layer (and position)."""
        g = torch.Generator().manual_seed(seed)
        out = {}
        for k, v in self.vectors.items():
            r = torch.randn(v.shape, generator=g)
            out[k] = r / r.norm(dim=-1, keepdim=True) * v.norm(dim=-1, keepdim=True)
        return Direction(out, f"random({self.method})", self.hook, self.model, {"seed": seed, "control_of": self.method})
