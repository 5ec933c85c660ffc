"""Analytic FLOPs per token for every configuration of the small GPT.

Matrix multiplies only, 2 FLOPs per multiply-add (as Kaplan et al. 2020, https://arxiv.org/abs/2001.08361,
and Hoffmann et al. 2022, https://arxiv.org/abs/2203.15556, Appendix F). Per layer and token, forward:

- projections: ``2 d (H + 2 H_kv) d_h`` (query, key, value) + ``2 H d_h d`` (output);
- attention: ``4 H d_h c`` (scores and the weighted sum) where ``c`` is the mean number of keys a query
  really attends: ``(T + 1) / 2`` causal, ``min(t + 1, w)`` averaged with a sliding window ``w``; the
  masked half of the square is not counted (explicit attention computes it and throws it away, so
  "model FLOPs" are the same for explicit and fused attention and their difference is only wall-clock);
- MLP: ``2 d h`` per matrix (2 matrices; SwiGLU 3); a mixture of experts counts ``top_k`` experts (the active
  parameters) plus the router ``2 d E``;
- output layer ``2 d V`` once.

Training = 3 x forward (backward is twice the forward). Norms, softmax, activations and the embedding lookup
are left out (well under 1% at these shapes). Tests check :func:`forward_flops` against FLOPs counted by
``torch.utils.flop_counter`` on the model itself.
"""

from __future__ import annotations

from .config import GPTConfig


def mean_keys(T: int, window: int | None) -> float:
    """Mean number of keys per query over positions 0..T-1 under a causal (optionally windowed) mask."""
    w = window or T
    return sum(min(t + 1, w) for t in range(T)) / T


def forward_flops(cfg: GPTConfig, T: int | None = None) -> dict:
    """Forward FLOPs per token, by part, at sequence length ``T`` (default: the context)."""
    T = T or cfg.context
    d, H, Hkv, dh, h = cfg.d_model, cfg.n_head, cfg.kv_heads, cfg.head_dim, cfg.hidden
    per_mlp = 2 * d * h * (3 if cfg.mlp == "swiglu" else 2)
    mlp = per_mlp * cfg.top_k + 2 * d * cfg.n_experts if cfg.n_experts else per_mlp
    parts = {
        "projections": cfg.n_layer * (2 * d * (H + 2 * Hkv) * dh + 2 * H * dh * d),
        "attention": cfg.n_layer * 4 * H * dh * mean_keys(T, cfg.window),
        "mlp": cfg.n_layer * mlp,
        "output": 2 * d * cfg.vocab_size,
    }
    parts["total"] = sum(parts.values())
    return parts


def train_flops_per_token(cfg: GPTConfig, T: int | None = None) -> float:
    """Training FLOPs per token: 3 x the forward (the backward costs twice the forward)."""
    return 3.0 * forward_flops(cfg, T)["total"]


def active_params(cfg: GPTConfig) -> int:
    """Parameters a token passes through in the matmuls (non-embedding, MoE: ``top_k`` experts) + the output layer."""
    f = forward_flops(cfg)
    return int((f["projections"] + f["mlp"] + f["output"]) / 2)
