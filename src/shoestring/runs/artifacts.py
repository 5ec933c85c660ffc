"""Artifacts: tensors as safetensors, everything else as JSON; both written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ShoestringError
from .atomic import write_bytes, write_json


def _is_tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(hasattr(v, "shape") and hasattr(v, "dtype") for v in obj.values())


def save(folder: Path, name: str, obj) -> Path:
    """Write ``obj`` to ``folder/name.safetensors`` (a dict of torch tensors or numpy arrays) or ``name.json``."""
    if _is_tensor_dict(obj):
        is_numpy = all(type(v).__module__ == "numpy" for v in obj.values())
        if is_numpy:
            from safetensors.numpy import save as to_bytes
        else:
            from safetensors.torch import save as to_bytes
            obj = {k: v.detach().cpu().contiguous() for k, v in obj.items()}
        return write_bytes(folder / f"{name}.safetensors", to_bytes(obj))
    return write_json(folder / f"{name}.json", obj)


def load(folder: Path, name: str):
    """Read back an artifact saved by :func:`save`."""
    tensors, doc = folder / f"{name}.safetensors", folder / f"{name}.json"
    if tensors.exists():
        try:
            from safetensors.torch import load_file
        except ImportError:  # pragma: no cover
            from safetensors.numpy import load_file
        return load_file(tensors)
    if doc.exists():
        return json.loads(doc.read_text())
    have = sorted(p.stem for p in folder.iterdir()) if folder.exists() else []
    raise ShoestringError(f"no artifact '{name}' in {folder}", f"saved ones: {', '.join(have) or 'none'}")
