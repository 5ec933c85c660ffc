"""Running statistics over cached activations, for when disk is short or as a summary of a store.

Mean and variance per dimension (Chan et al.'s parallel update, in float64), the mean and variance of
the L2 norm, and the top-k activating tokens per unit (a neuron, a residual dimension, or a direction
given as a matrix). The state is saved at each shard boundary under the number of contexts it covers,
so a resumed run continues from the state that matches the manifest and never counts a token twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..runs.atomic import atomic_path, write_json


@dataclass
class Moments:
    """Count, mean and sum of squared deviations per column (float64)."""

    count: int
    mean: torch.Tensor  # [width]
    m2: torch.Tensor  # [width]

    @classmethod
    def zeros(cls, width: int) -> "Moments":
        return cls(0, torch.zeros(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        """Fold in ``x`` of shape ``[n, width]``."""
        x = x.double()
        n = x.shape[0]
        if n == 0:
            return
        mean_b = x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        total = self.count + n
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def var(self) -> torch.Tensor:
        return self.m2 / max(self.count - 1, 1)


@dataclass
class TopK:
    """The k largest values per unit and the global token index where each occurred."""

    values: torch.Tensor  # [units, k]
    index: torch.Tensor  # [units, k] global token index

    @classmethod
    def empty(cls, units: int, k: int) -> "TopK":
        return cls(torch.full((units, k), float("-inf")), torch.full((units, k), -1, dtype=torch.int64))

    def update(self, x: torch.Tensor, first_token: int) -> None:
        """Fold in ``x`` of shape ``[n, units]`` whose first row is token ``first_token``."""
        k = self.values.shape[1]
        v, i = x.float().T.topk(min(k, x.shape[0]), dim=1)  # [units, k']
        values = torch.cat([self.values, v], dim=1)
        index = torch.cat([self.index, i + first_token], dim=1)
        top = values.topk(k, dim=1)
        self.values, self.index = top.values, index.gather(1, top.indices)


class StatsCollector:
    """Moments, norm moments and top-k per hook; ``directions`` maps a hook to a ``[m, width]`` matrix."""

    def __init__(self, widths: dict[str, int], topk: int = 0, directions: dict[str, torch.Tensor] | None = None):
        self.widths, self.k = dict(widths), topk
        self.directions = directions or {}
        self.moments = {h: Moments.zeros(w) for h, w in widths.items()}
        self.norms = {h: Moments.zeros(1) for h in widths}
        self.top = {}
        if topk:
            for h, w in widths.items():
                units = self.directions[h].shape[0] if h in self.directions else w
                self.top[h] = TopK.empty(units, topk)

    def update(self, acts: dict[str, torch.Tensor], first_token: int) -> None:
        """``acts[h]``: ``[batch, pos, width]`` for contexts starting at global token ``first_token``."""
        for h, x in acts.items():
            flat = x.reshape(-1, x.shape[-1]).float()
            self.moments[h].update(flat)
            self.norms[h].update(flat.norm(dim=-1, keepdim=True))
            if h in self.top:
                units = flat @ self.directions[h].T.float() if h in self.directions else flat
                self.top[h].update(units, first_token)

    # -- persistence ------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for h in self.widths:
            m, n = self.moments[h], self.norms[h]
            out.update({f"{h}/mean": m.mean, f"{h}/m2": m.m2, f"{h}/norm_mean": n.mean, f"{h}/norm_m2": n.m2})
            if h in self.top:
                out.update({f"{h}/top_values": self.top[h].values, f"{h}/top_index": self.top[h].index})
        return out

    def save(self, folder: Path, upto_context: int) -> None:
        folder = Path(folder)
        name = f"stats-{upto_context:09d}"
        with atomic_path(folder / f"{name}.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self._tensors().items()}, str(tmp))
        counts = {h: self.moments[h].count for h in self.widths}
        write_json(folder / f"{name}.json", {"upto_context": upto_context, "counts": counts, "topk": self.k})
        for old in folder.glob("stats-*.json"):  # keep this one and the one before (the manifest may lag by one)
            if old.stem < name and not _is_previous(folder, old.stem, name):
                old.unlink(missing_ok=True)
                (folder / f"{old.stem}.safetensors").unlink(missing_ok=True)

    @classmethod
    def open(cls, folder: Path, widths: dict[str, int], topk: int = 0, upto_context: int = 0,
             directions: dict[str, torch.Tensor] | None = None) -> "StatsCollector":
        """A fresh collector, or the saved one that covers exactly ``upto_context`` contexts."""
        stats = cls(widths, topk, directions)
        if upto_context == 0:
            return stats
        name = Path(folder) / f"stats-{upto_context:09d}"
        try:
            meta = json.loads((name.with_suffix(".json")).read_text())
            tensors = load_file(str(name.with_suffix(".safetensors")))
        except (OSError, ValueError) as err:
            from ..errors import ShoestringError

            raise ShoestringError(f"the statistics of {folder} at context {upto_context} are missing or damaged ({err})",
                                  "cache again into a new --out folder") from None
        for h in widths:
            c = meta["counts"][h]
            stats.moments[h] = Moments(c, tensors[f"{h}/mean"], tensors[f"{h}/m2"])
            stats.norms[h] = Moments(c, tensors[f"{h}/norm_mean"], tensors[f"{h}/norm_m2"])
            if h in stats.top:
                stats.top[h] = TopK(tensors[f"{h}/top_values"], tensors[f"{h}/top_index"])
        return stats

    def summary(self) -> dict:
        return {
            h: {
                "tokens": self.moments[h].count,
                "mean_norm": float(self.norms[h].mean[0]),
                "std_norm": float(self.norms[h].var[0].sqrt()),
                "mean_abs_mean": float(self.moments[h].mean.abs().mean()),
                "mean_var": float(self.moments[h].var.mean()),
            }
            for h in self.widths
        }


def _is_previous(folder: Path, stem: str, newest: str) -> bool:
    older = sorted(p.stem for p in folder.glob("stats-*.json") if p.stem < newest)
    return bool(older) and stem == older[-1]
