"""A small GPT in one readable file; every toggle of :class:`~shoestring.scaling.config.GPTConfig` is a few lines.

- positions: learned absolute (GPT-2), sinusoidal (Vaswani et al. 2017), RoPE (Su et al. 2021,
  https://arxiv.org/abs/2104.09864), ALiBi (Press et al. 2021, https://arxiv.org/abs/2108.12409), none
  (NoPE, Kazemnejad et al. 2023);
- normalisation: none, LayerNorm, RMSNorm (Zhang & Sennrich 2019); pre or post; QK-norm (Dehghani et al. 2023);
- attention: explicit softmax or fused ``scaled_dot_product_attention``; multi-head, multi-query
  (Shazeer 2019), grouped-query (Ainslie et al. 2023); sliding window (Beltagy et al. 2020) as the sparse variant;
- MLP: GELU, SwiGLU (Shazeer 2020, https://arxiv.org/abs/2002.05202), ReLU^2 (So et al. 2021);
- mixture of experts: top-k routing with the Switch Transformer load-balancing loss (Fedus et al. 2021,
  https://arxiv.org/abs/2101.03961);
- tied or untied embeddings, dropout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPTConfig


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(dim)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim)
    return nn.Identity()


def rope_tables(T: int, dim: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    angles = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv)  # [T, dim/2]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of ``x`` [B, H, T, D] by the position angles."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1).type_as(x)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Geometric slopes 2^(-8 i / n) (Press et al. 2021), interleaved for head counts that are not powers of 2."""
    def pow2(n):
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]
    if math.log2(n_head).is_integer():
        return torch.tensor(pow2(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    return torch.tensor(pow2(closest) + pow2(2 * closest)[0::2][: n_head - closest])


def sinusoidal(T: int, dim: int) -> torch.Tensor:
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(T, dim)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: dim // 2])
    return table


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg, hd = cfg, cfg.head_dim
        self.q = nn.Linear(cfg.d_model, cfg.n_head * hd, bias=cfg.bias)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.kv_heads * hd, bias=cfg.bias)
        self.o = nn.Linear(cfg.n_head * hd, cfg.d_model, bias=cfg.bias)
        self.q_norm = make_norm(cfg.norm, hd) if cfg.qk_norm else nn.Identity()
        self.k_norm = make_norm(cfg.norm, hd) if cfg.qk_norm else nn.Identity()
        self.drop = cfg.dropout

    def forward(self, x: torch.Tensor, rope=None, bias: torch.Tensor | None = None) -> torch.Tensor:
        cfg, (B, T, _) = self.cfg, x.shape
        q = self.q(x).view(B, T, cfg.n_head, cfg.head_dim).transpose(1, 2)  # [B, H, T, D]
        k, v = self.kv(x).view(B, T, 2, cfg.kv_heads, cfg.head_dim).permute(2, 0, 3, 1, 4)  # [B, Hkv, T, D] each
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cfg.kv_heads != cfg.n_head:  # multi-query / grouped: each key-value head serves a group of query heads
            k = k.repeat_interleave(cfg.n_head // cfg.kv_heads, dim=1)
            v = v.repeat_interleave(cfg.n_head // cfg.kv_heads, dim=1)
        p = self.drop if self.training else 0.0
        if cfg.attention == "sdpa":
            if bias is None:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(cfg.head_dim))  # [B, H, T, T]
            att = F.dropout((att + bias).softmax(-1), p)  # explicit attention always gets its mask as a bias
            y = att @ v
        return F.dropout(self.o(y.transpose(1, 2).reshape(B, T, -1)), p)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.kind, h = cfg.mlp, cfg.hidden
        self.up = nn.Linear(cfg.d_model, h * (2 if cfg.mlp == "swiglu" else 1), bias=cfg.bias)
        self.down = nn.Linear(h, cfg.d_model, bias=cfg.bias)
        self.drop = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.kind == "swiglu":
            gate, h = h.chunk(2, dim=-1)
            h = F.silu(gate) * h
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:
            h = F.gelu(h)
        return F.dropout(self.down(h), self.drop if self.training else 0.0)


class MoE(nn.Module):
    """Top-k routed experts; ``aux`` holds the Switch load-balancing loss ``E * sum_e f_e P_e`` of the last call."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.router = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        self.experts = nn.ModuleList(MLP(cfg) for _ in range(cfg.n_experts))
        self.k = cfg.top_k
        self.aux = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])  # [N, d]
        probs = self.router(flat).softmax(-1)  # [N, E]
        weight, chosen = probs.topk(self.k, dim=-1)  # [N, k]
        weight = weight / weight.sum(-1, keepdim=True)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if len(rows):
                out.index_add_(0, rows, expert(flat[rows]) * weight[rows, slot, None])
        n_exp = probs.shape[-1]
        routed = F.one_hot(chosen, n_exp).sum(1).float().mean(0) / self.k  # f_e: share of assignments
        self.aux = n_exp * (routed * probs.mean(0)).sum()
        return out.view_as(x)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.post = cfg.norm_position == "post"
        self.norm1, self.norm2 = make_norm(cfg.norm, cfg.d_model), make_norm(cfg.norm, cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = MoE(cfg) if cfg.n_experts else MLP(cfg)

    def forward(self, x, rope=None, bias=None):
        if self.post:  # the original Transformer: normalise after each residual sum
            x = self.norm1(x + self.attn(x, rope, bias))
            return self.norm2(x + self.mlp(x))
        x = x + self.attn(self.norm1(x), rope, bias)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """The small GPT. ``forward(ids[B, T], targets[B, T] | None) -> (logits[B, T, V], cross-entropy | None)``;
    a mixture of experts leaves its load-balancing loss in ``self.aux_loss`` (see :meth:`training_loss`)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg.check()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model) if cfg.positions == "learned" else None
        if cfg.positions == "sinusoidal":
            self.register_buffer("sin_table", sinusoidal(cfg.context, cfg.d_model), persistent=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = make_norm(cfg.norm, cfg.d_model) if cfg.norm_position == "pre" else nn.Identity()
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.aux_loss = torch.zeros(())
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2 n_layer)
            if name.endswith(("o.weight", "down.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def _attention_bias(self, T: int, device) -> torch.Tensor | None:
        """An additive [H or 1, T, T] mask, built once per forward: for explicit attention always, for fused
        attention only when the pattern is not plain causal (ALiBi, sliding window; else ``is_causal``)."""
        cfg = self.cfg
        if cfg.positions != "alibi" and cfg.window is None and cfg.attention == "sdpa":
            return None
        i = torch.arange(T, device=device)
        dist = (i[:, None] - i[None, :]).float()  # query - key
        allowed = dist >= 0
        if cfg.window is not None:
            allowed &= dist < cfg.window
        bias = torch.zeros(1, T, T, device=device).masked_fill(~allowed, float("-inf"))
        if cfg.positions == "alibi":
            bias = bias - alibi_slopes(cfg.n_head).to(device)[:, None, None] * dist.clamp(min=0)
        return bias

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None):
        cfg, T = self.cfg, ids.shape[1]
        if T > cfg.context:
            raise ValueError(f"sequence of {T} tokens is longer than the context {cfg.context}")
        x = self.embed(ids)
        if self.pos is not None:
            x = x + self.pos(torch.arange(T, device=ids.device))
        elif cfg.positions == "sinusoidal":
            x = x + self.sin_table[:T]
        rope = rope_tables(T, cfg.head_dim, cfg.rope_theta, ids.device) if cfg.positions == "rope" else None
        bias = self._attention_bias(T, ids.device)
        x = F.dropout(x, cfg.dropout if self.training else 0.0)
        for block in self.blocks:
            x = block(x, rope, bias)
        logits = self.head(self.norm(x))
        if targets is None:
            return logits, None
        if cfg.n_experts:
            self.aux_loss = torch.stack([b.mlp.aux for b in self.blocks]).mean()
        return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))

    def training_loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy plus, for a mixture of experts, ``aux_loss_coef`` x the load-balancing loss."""
        _, loss = self(ids, targets)
        return loss + self.cfg.aux_loss_coef * self.aux_loss if self.cfg.n_experts else loss

    def n_params(self, embedding: bool = True) -> int:
        """Parameters (counted once when tied); ``embedding=False`` leaves out token and position tables."""
        n = sum(p.numel() for p in self.parameters())
        if not embedding:
            n -= self.embed.weight.numel() + (self.pos.weight.numel() if self.pos is not None else 0)
        return n
