"""The small GPT's toggles, checked before anything is built, and the named presets of "LLM-e Guess".

Every toggle is a field of :class:`GPTConfig`; :meth:`GPTConfig.check` turns a combination that cannot exist
into one :class:`~shoestring.errors.ShoestringError` line (so the CLI exits 2 before a run starts).

Presets follow "LLM-e Guess: Can LLMs Capabilities Advance Without Hardware Progress?" (Hu et al. 2025,
https://arxiv.org/abs/2505.04075): a GPT-2 baseline without block LayerNorm, with learned absolute positions
and explicit (unfused) attention, and one variant per idea (LayerNorm, RoPE, fused attention, all three,
multi-query attention, sliding-window sparse attention).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..errors import ShoestringError

POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")
NORMS = ("none", "layernorm", "rmsnorm")
ATTENTIONS = ("explicit", "sdpa")
MLPS = ("gelu", "swiglu", "relu2")


@dataclass(frozen=True)
class GPTConfig:
    """Shape and toggles of the small GPT (:class:`shoestring.scaling.model.GPT`)."""

    vocab_size: int = 1024
    context: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None: multi-head; 1: multi-query; between: grouped-query
    d_model: int = 128
    mlp_hidden: int | None = None  # None: 4 d (GELU, ReLU^2) or 8/3 d rounded to 8 (SwiGLU: the same parameters)
    positions: str = "learned"
    norm: str = "layernorm"
    norm_position: str = "pre"  # "pre" (GPT-2) or "post" (the original Transformer)
    qk_norm: bool = False
    attention: str = "sdpa"
    window: int | None = None  # sliding-window attention: each query sees at most this many keys
    mlp: str = "gelu"
    n_experts: int = 0  # 0: a dense MLP; otherwise a mixture of experts with top-k routing
    top_k: int = 2
    aux_loss_coef: float = 0.01  # Switch Transformer load-balancing loss weight
    tie_embeddings: bool = True
    dropout: float = 0.0
    bias: bool = False
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def hidden(self) -> int:
        if self.mlp_hidden:
            return self.mlp_hidden
        return 4 * self.d_model if self.mlp != "swiglu" else (8 * self.d_model // 3 + 7) // 8 * 8

    def check(self) -> "GPTConfig":
        """Raise one clear line for a combination that cannot exist; return self."""
        def bad(what, fix):
            raise ShoestringError(what, fix)

        for name, value, allowed in (("positions", self.positions, POSITIONS), ("norm", self.norm, NORMS),
                                     ("attention", self.attention, ATTENTIONS), ("mlp", self.mlp, MLPS),
                                     ("norm_position", self.norm_position, ("pre", "post"))):
            if value not in allowed:
                bad(f"unknown {name} '{value}'", f"use one of: {', '.join(allowed)}")
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model"):
            if getattr(self, name) < 1:
                bad(f"{name} must be at least 1, got {getattr(self, name)}", f"set {name} to a positive integer")
        if self.d_model % self.n_head:
            bad(f"d_model {self.d_model} is not divisible by n_head {self.n_head}", "pick d_model = n_head x head size")
        if self.positions == "rope" and self.head_dim % 2:
            bad(f"RoPE needs an even head size, got {self.head_dim}", "change d_model or n_head")
        if self.n_kv_head is not None and (self.n_kv_head < 1 or self.n_head % self.n_kv_head):
            bad(f"n_kv_head {self.n_kv_head} does not divide n_head {self.n_head}",
                "use 1 (multi-query), n_head (multi-head) or a divisor of n_head (grouped-query)")
        if self.window is not None and not 1 <= self.window <= self.context:
            bad(f"window {self.window} is outside 1..context ({self.context})", "set a window between 1 and the context")
        if self.norm == "none" and (self.qk_norm or self.norm_position == "post"):
            bad("QK-norm and post-norm need a normalisation, but norm is 'none'", "set norm to layernorm or rmsnorm")
        if self.n_experts:
            if self.n_experts < 2:
                bad(f"a mixture of experts needs at least 2 experts, got {self.n_experts}", "set n_experts 0 (dense) or >= 2")
            if not 1 <= self.top_k <= self.n_experts:
                bad(f"top_k {self.top_k} is outside 1..n_experts ({self.n_experts})", "route each token to 1..n_experts experts")
        elif self.top_k != 2 and self.n_experts == 0:
            bad(f"top_k {self.top_k} is set but there are no experts", "set n_experts >= 2 or leave top_k alone")
        if not 0.0 <= self.dropout < 1.0:
            bad(f"dropout {self.dropout} is outside [0, 1)", "use a probability such as 0.1")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ShoestringError(f"unknown model toggle(s): {', '.join(unknown)}",
                                  f"known toggles: {', '.join(sorted(known))}")
        return cls(**d).check()


# The paper's baseline: GPT-2 without block LayerNorm, learned positions, explicit attention (its Table 1).
BASELINE = dict(norm="none", positions="learned", attention="explicit")

PRESETS: dict[str, dict] = {
    "baseline": BASELINE,
    "layernorm": {**BASELINE, "norm": "layernorm"},
    "rope": {**BASELINE, "positions": "rope"},
    "fused": {**BASELINE, "attention": "sdpa"},
    "all-three": {**BASELINE, "norm": "layernorm", "positions": "rope", "attention": "sdpa"},
    "multi-query": {**BASELINE, "n_kv_head": 1},
    "sliding-window": {**BASELINE, "window": 0.25},  # a fraction: a quarter of the context
    "rmsnorm": {**BASELINE, "norm": "rmsnorm"},
    "alibi": {**BASELINE, "positions": "alibi"},
    "swiglu": {**BASELINE, "mlp": "swiglu"},
    "moe": {**BASELINE, "n_experts": 4, "top_k": 2},
    "modern": dict(norm="rmsnorm", positions="rope", attention="sdpa", mlp="swiglu", qk_norm=True),
}

# The paper's numbers (its Table 2: CEG at its scale), printed beside ours in the report.
PAPER_CEG = {"layernorm": 1.84, "rope": 1.87, "fused": 1.06, "all-three": 3.5, "multi-query": None,
             "sliding-window": None}
PAPER_NOTE = {"multi-query": "never reaches the baseline's loss", "sliding-window": "never reaches the baseline's loss"}


def preset(name: str, **shape) -> GPTConfig:
    """A named preset with the given shape (``d_model``, ``n_layer``, ...) and any toggle overrides."""
    if name not in PRESETS:
        raise ShoestringError(f"unknown preset '{name}'", f"use one of: {', '.join(PRESETS)}")
    d = {**PRESETS[name], **shape}
    if isinstance(d.get("window"), float):
        d["window"] = max(1, int(d["window"] * d.get("context", GPTConfig.context)))
    return GPTConfig.from_dict(d)


def with_shape(cfg: GPTConfig, **shape) -> GPTConfig:
    return replace(cfg, **shape).check()
