"""Training checkpoints shared by every trainer that resumes (the scaling lab, pruning recovery): the weights as
safetensors, the optimiser state and any extras (RNG state, ...) through ``torch.save`` and loaded back with
``weights_only=True``, and ``state.json`` written last, so its presence says the checkpoint is whole. Every file
is written to a temporary name and renamed."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .atomic import atomic_path, write_json


def write_checkpoint(folder: Path, weights: dict, optimizer: dict, state: dict, extras: dict | None = None) -> None:
    """Write ``model.safetensors``, ``optimizer.pt``, ``<name>.pt`` per extra, then ``state.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp))
    for name, obj in {"optimizer": optimizer, **(extras or {})}.items():
        with atomic_path(folder / f"{name}.pt") as tmp:
            torch.save(obj, tmp)
    write_json(folder / "state.json", state)


def read_checkpoint(folder: Path, extras: tuple[str, ...] = ()) -> tuple[dict, dict, dict, dict] | None:
    """``(weights, optimizer state, state, {extra: obj})`` of a whole checkpoint, or ``None`` when there is none."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "state.json").is_file():
        return None
    found = {n: torch.load(folder / f"{n}.pt", weights_only=True) for n in extras if (folder / f"{n}.pt").is_file()}
    return (load_file(str(folder / "model.safetensors")), torch.load(folder / "optimizer.pt", weights_only=True),
            json.loads((folder / "state.json").read_text()), found)
