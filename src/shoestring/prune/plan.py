"""A pruning plan: what to keep, per layer, as a JSON file that can be read, edited and applied.

A plan keeps, for each layer, the indices of the key-value groups (each group = one key head, one value head
and the query heads that read it, so grouped-query attention stays consistent) and of the MLP channels (a
gated MLP's gate, up and down together), and may drop whole layers. It names the model it was made for
(its shape), so a plan for another model is refused in one line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ShoestringError
from ..runs.atomic import write_json


def model_shape(config) -> dict:
    """The shape a plan depends on, from a transformers config."""
    heads = config.num_attention_heads
    return {"model_type": config.model_type, "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": heads,
            "num_key_value_heads": getattr(config, "num_key_value_heads", None) or heads,
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
            "intermediate_size": config.intermediate_size}


@dataclass
class PruningPlan:
    """Kept key-value groups and MLP channels per layer (``None``: keep all), layers to drop, and provenance."""

    model: dict
    kv_groups: dict[int, list[int]] = field(default_factory=dict)
    channels: dict[int, list[int]] = field(default_factory=dict)
    drop_layers: list[int] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # criterion, ratios, calibration corpus, ...

    def check(self, config) -> "PruningPlan":
        """Raise one clear line if this plan cannot apply to a model with ``config``."""
        shape = model_shape(config)
        if shape != self.model:
            diff = ", ".join(f"{k} {self.model.get(k)} vs {v}" for k, v in shape.items() if self.model.get(k) != v)
            raise ShoestringError(f"the plan was made for another model ({diff})",
                                  "make the plan on this model, or load the model the plan names")
        L, G, I = shape["num_hidden_layers"], shape["num_key_value_heads"], shape["intermediate_size"]
        for what, table, n in (("key-value groups", self.kv_groups, G), ("MLP channels", self.channels, I)):
            for layer, keep in table.items():
                if not 0 <= int(layer) < L:
                    raise ShoestringError(f"the plan names layer {layer}, but the model has {L}", "edit the plan")
                if not keep:
                    raise ShoestringError(f"the plan removes every one of the {n} {what} of layer {layer}",
                                          "keep at least one, or drop the whole layer with drop_layers")
                if len(set(keep)) != len(keep) or not all(0 <= int(i) < n for i in keep):
                    raise ShoestringError(f"layer {layer}'s kept {what} repeat or fall outside 0..{n - 1}",
                                          "edit the plan")
        if any(not 0 <= int(i) < L for i in self.drop_layers) or len(set(self.drop_layers)) >= L:
            raise ShoestringError(f"drop_layers {self.drop_layers} is outside 0..{L - 1} or drops every layer",
                                  "keep at least one layer")
        return self

    def is_uniform(self) -> bool:
        """Every layer keeps the same number of groups and of channels (a plain config can express it)."""
        L = self.model["num_hidden_layers"]
        kept = [i for i in range(L) if i not in self.drop_layers]
        groups = {len(self.kv_groups.get(i, range(self.model["num_key_value_heads"]))) for i in kept}
        chans = {len(self.channels.get(i, range(self.model["intermediate_size"]))) for i in kept}
        return len(groups) == 1 and len(chans) == 1

    def save(self, path) -> Path:
        d = asdict(self)
        d["kv_groups"] = {str(k): [int(i) for i in v] for k, v in self.kv_groups.items()}
        d["channels"] = {str(k): [int(i) for i in v] for k, v in self.channels.items()}
        return write_json(path, d)

    @classmethod
    def load(cls, path) -> "PruningPlan":
        try:
            d = json.loads(Path(path).read_text())
            return cls(model=d["model"], kv_groups={int(k): v for k, v in d.get("kv_groups", {}).items()},
                       channels={int(k): v for k, v in d.get("channels", {}).items()},
                       drop_layers=list(d.get("drop_layers", [])), meta=d.get("meta", {}))
        except (OSError, ValueError, KeyError, AttributeError) as err:
            raise ShoestringError(f"cannot read the pruning plan {path}: {err}", "pass a plan written by shoestring")
