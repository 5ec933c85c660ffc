"""Read a safetensors file's header (tensor names, dtypes, shapes, byte offsets) without loading it."""

from __future__ import annotations

import json
import struct


def read_header(path) -> tuple[int, dict]:
    """``(byte offset of the data, {name: {"dtype", "shape", "data_offsets"}})``, metadata left out."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header
