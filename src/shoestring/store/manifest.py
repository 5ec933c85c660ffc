"""The manifest of an activation store: what made it, and which shards are complete.

A shard is listed only after its file was fully written and renamed into place, and the manifest
itself is replaced atomically, so whatever moment a run is killed at, the manifest describes shards
that exist and are whole. Resuming continues after the last listed shard.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ShoestringError
from ..runs.atomic import write_json

MANIFEST = "manifest.json"
FORMAT = 1

# Settings that must match for a store to be resumed or extended.
IDENTITY = ("model", "model_fingerprint", "hooks", "dtype", "context_length", "corpus", "add_bos", "shard_contexts",
            "stats_only", "topk", "directions")


@dataclass
class Shard:
    file: str
    first_context: int
    n_contexts: int
    n_tokens: int
    checksum: str  # blake2b of the tensors' bytes, in a fixed order
    norms: dict[str, float]  # mean L2 norm per hook over the shard


@dataclass
class Manifest:
    model: str
    model_fingerprint: str
    hooks: list[str]
    widths: dict[str, int]
    dtype: str
    context_length: int
    corpus: str
    add_bos: bool
    shard_contexts: int
    target_tokens: int
    stats_only: bool = False
    topk: int = 0
    directions: dict[str, list[int]] = field(default_factory=dict)  # hook -> [m, width] of the directions
    status: str = "running"  # running | done
    shards: list[Shard] = field(default_factory=list)
    format: int = FORMAT
    meta: dict = field(default_factory=dict)

    @property
    def n_contexts(self) -> int:
        return sum(s.n_contexts for s in self.shards)

    @property
    def n_tokens(self) -> int:
        return sum(s.n_tokens for s in self.shards)

    def save(self, folder: Path) -> None:
        write_json(Path(folder) / MANIFEST, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> "Manifest":
        path = Path(folder) / MANIFEST
        if not path.exists():
            raise ShoestringError(f"{folder} is not an activation store (no {MANIFEST})", "run `shoestring cache ... --out DIR` first")
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ShoestringError(f"{folder}: store format {data.get('format')} is not supported", f"this shoestring reads format {FORMAT}")
        data["shards"] = [Shard(**s) for s in data.get("shards", [])]
        return cls(**data)

    def check_same(self, other: "Manifest", folder) -> None:
        """Refuse to resume a store made with other settings, naming the first difference."""
        for key in IDENTITY:
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine != theirs:
                raise ShoestringError(
                    f"{folder} holds a store made with {key}={mine!r}, not {theirs!r}",
                    "use a new --out folder, or the same settings to resume it",
                )
