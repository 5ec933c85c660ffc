"""The closed loop: a direction, a sweep over layers x scales, steered vs unsteered vs a random control of
equal norm, every judge on every output, paired effects with bootstrap 95% intervals, and side effects.

A spec is a TOML file (or the same dict)::

    model = "smollm2-135m"
    [direction]
    method = "mean_diff"          # mean_diff | pca_diff | probe | actadd | sae_feature | file
    pairs = "sentiment"           # the shipped contrastive pairs, or a .jsonl with positive/negative
    [prompts]
    builtin = "sentiment"         # or texts = [...], or file = "prompts.txt"
    [sweep]
    layers = [10, 15]
    scales = [4.0, 8.0]
    mode = "add"                  # add | ablate | ablate_add | clamp; sae_feature also: clamp, flip (the latent)
    [generation]
    max_new_tokens = 24
    seeds = [0]
    [[judges]]
    name = "sentiment"
    sign = 1                      # the intended direction of change; 0: a side effect (fluency), no direction
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import ShoestringError

DATA = resources.files("shoestring.steer") / "data"


def shipped_pairs(name: str = "sentiment") -> tuple[list[str], list[str]]:
    """The contrastive pairs the project ships (written for it): ``(positive, negative)``."""
    path = DATA / f"{name}_pairs.jsonl"
    if not path.is_file():
        raise ShoestringError(f"no shipped contrastive set '{name}'", "use pairs = \"sentiment\" or a .jsonl with positive/negative fields")
    return read_pairs(path)


def read_pairs(path) -> tuple[list[str], list[str]]:
    pos, neg = [], []
    for i, line in enumerate(Path(str(path)).read_text().splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pos.append(str(row["positive"]))
            neg.append(str(row["negative"]))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ShoestringError(f"{path}, line {i + 1}: not a {{\"positive\", \"negative\"}} object ({e})",
                                  "write one JSON object per line with both fields")
    return pos, neg


def shipped_spec(name: str = "demo") -> Path:
    """The path of a spec the project ships (``demo``: the closed loop ``make demo`` runs)."""
    path = DATA / f"{name}.toml"
    if not path.is_file():
        raise ShoestringError(f"no shipped spec '{name}'", "use demo, or pass the path of a TOML spec")
    return Path(str(path))


def shipped_prompts(name: str = "sentiment") -> list[str]:
    path = DATA / f"{name}_prompts.txt"
    if not path.is_file():
        raise ShoestringError(f"no shipped prompt set '{name}'", "use builtin = \"sentiment\", texts = [...] or file = \"...\"")
    return [t for t in path.read_text().splitlines() if t.strip()]


@dataclass
class Spec:
    model: str = "smollm2-135m"
    direction: dict = field(default_factory=lambda: {"method": "mean_diff", "pairs": "sentiment"})
    prompts: dict = field(default_factory=lambda: {"builtin": "sentiment"})
    sweep: dict = field(default_factory=lambda: {"layers": [15], "scales": [4.0]})
    generation: dict = field(default_factory=lambda: {"max_new_tokens": 24, "seeds": [0]})
    judges: list = field(default_factory=lambda: [{"name": "sentiment", "sign": 1}])
    side_effects: dict = field(default_factory=lambda: {"texts": 8})

    @classmethod
    def from_toml(cls, path) -> "Spec":
        import tomllib

        p = Path(path)
        if not p.is_file():
            raise ShoestringError(f"no spec file {p}", "pass a TOML experiment spec (see docs/steer.md)")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ShoestringError(f"{p} is not valid TOML ({e})", "fix the spec's syntax")
        return cls.from_dict(raw, where=str(p))

    @classmethod
    def from_dict(cls, raw: dict, where: str = "the spec") -> "Spec":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ShoestringError(f"{where} has unknown section(s) {unknown}", f"use {', '.join(sorted(known))}")
        spec = cls(**{**cls().__dict__, **raw})
        spec.check(where)
        return spec

    def check(self, where: str = "the spec") -> None:
        from ..judges import JUDGES
        from .apply import MODES
        from .feature_edit import FEATURE_MODES
        from .methods import METHODS

        for j in self.judges:
            if not isinstance(j, dict) or "name" not in j:
                raise ShoestringError(f"{where}: every [[judges]] entry needs a name", "e.g. [[judges]] name = \"sentiment\"")
            if j["name"] not in JUDGES:
                raise ShoestringError(f"{where}: unknown judge '{j['name']}'", f"use one of {', '.join(JUDGES)}")
        method = self.direction.get("method", "mean_diff")
        if method != "file" and method not in METHODS:
            raise ShoestringError(f"{where}: unknown direction method '{method}'", f"use one of {', '.join(METHODS)} or file")
        mode = self.sweep.get("mode", "add")
        if mode not in MODES and not (method == "sae_feature" and mode in FEATURE_MODES):
            extra = f" (and {', '.join(FEATURE_MODES)} for sae_feature)"
            raise ShoestringError(f"{where}: unknown steering mode '{mode}'", f"use one of {', '.join(MODES)}{extra}")
        if method == "sae_feature" and ("sae" not in self.direction or "feature" not in self.direction):
            raise ShoestringError(f"{where}: [direction] method = \"sae_feature\" needs sae and feature",
                                  "e.g. sae = \"runs/sae-train-.../sae-0\", feature = 123 (or \"contrast\")")
        if not self.sweep.get("layers") or not self.sweep.get("scales"):
            raise ShoestringError(f"{where}: [sweep] needs layers and scales", "e.g. layers = [15], scales = [4.0, 8.0]")

    def prompt_texts(self) -> list[str]:
        p = self.prompts
        if "texts" in p:
            texts = [str(t) for t in p["texts"]]
        elif "file" in p:
            f = Path(p["file"])
            if not f.is_file():
                raise ShoestringError(f"prompt file {f} does not exist", "give file = a text file with one prompt per line")
            texts = [t for t in f.read_text().splitlines() if t.strip()]
        else:
            texts = shipped_prompts(p.get("builtin", "sentiment"))
        if not texts:
            raise ShoestringError("the experiment has no prompts", "give [prompts] texts, file or builtin")
        return texts[: int(p["limit"])] if "limit" in p else texts


def build_direction(spec: Spec, lm, sae_out: list | None = None):
    """The direction the spec names, fitted on every layer of the sweep. For an SAE feature the loaded SAE
    is appended to ``sae_out`` (so that a latent edit does not load it again)."""
    from .direction import Direction
    from .methods import METHODS

    d = spec.direction
    method = d.get("method", "mean_diff")
    layers = tuple(int(x) for x in spec.sweep["layers"])
    if method == "file":
        return Direction.load(d["path"])
    if method == "sae_feature":
        sae, feature, meta = feature_of(spec, lm)
        if sae_out is not None:
            sae_out.append(sae)
        direction = METHODS[method](feature).fit(sae)
        direction.meta.update(meta)
        return direction
    if method == "actadd":
        return METHODS[method](layers=layers).fit(lm, d["positive"], d["negative"])
    pos, neg = contrast_sets(d)
    return METHODS[method](layers=layers, position=d.get("position", "last")).fit(lm, pos, neg)


def contrast_sets(d: dict) -> tuple[list[str], list[str]]:
    """The ``(positive, negative)`` texts a [direction] section names (inline lists, a .jsonl or a shipped set)."""
    if "positive" in d:
        return list(d["positive"]), list(d.get("negative", []))
    pairs = d.get("pairs", "sentiment")
    return read_pairs(pairs) if str(pairs).endswith(".jsonl") else shipped_pairs(pairs)


def feature_of(spec: Spec, lm):
    """``(sae, feature, meta)`` for a ``sae_feature`` direction. ``feature`` is an index, or ``"contrast"``
    (``"contrast-negative"``): the latent that fires most on the positive (negative) texts of the pairs
    against the other side, by the moderated t of :func:`~shoestring.sae.search.search_by_contrast`."""
    from ..sae import load_sae
    from ..sae.search import search_by_contrast

    d = spec.direction
    sae = load_sae(d["sae"])
    feature = d["feature"]
    if isinstance(feature, int):
        return sae, feature, {}
    if feature not in ("contrast", "contrast-negative"):
        raise ShoestringError(f"feature = {feature!r} is neither a latent index nor a contrast",
                              "use an integer, \"contrast\" or \"contrast-negative\"")
    pos, neg = contrast_sets(d)
    a, b = (pos, neg) if feature == "contrast" else (neg, pos)
    rows = search_by_contrast(sae, lm, a, b, top=1)
    if not rows:
        raise ShoestringError("no SAE latent fires more on one side of the pairs", "name a feature index instead")
    top = {k: float(rows[0][k]) for k in ("mean_a", "mean_b", "score")}
    return sae, int(rows[0]["latent"]), {"picked_by": feature, "contrast": top}
