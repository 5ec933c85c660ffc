"""Optimisers (AdamW, Muon) and learning-rate schedules (cosine, warm-up-stable-decay) for the small GPT."""

from __future__ import annotations

import math

import torch

from ..errors import ShoestringError

OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "wsd", "constant")


def lr_at(step: int, steps: int, lr: float, schedule: str = "cosine", warmup: float = 0.05, min_ratio: float = 0.1,
          decay: float = 0.2) -> float:
    """Learning rate at ``step`` of ``steps``: linear warm-up over a ``warmup`` fraction, then

    - ``cosine``: down to ``min_ratio * lr`` at the last step;
    - ``wsd`` (warm-up-stable-decay, Hu et al. 2024, https://arxiv.org/abs/2404.06395): constant, then linear
      down to ``min_ratio * lr`` over the last ``decay`` fraction;
    - ``constant``.
    """
    w = max(1, int(round(warmup * steps))) if warmup > 0 else 0
    if step < w:
        return lr * (step + 1) / w
    if schedule == "constant":
        return lr
    if schedule == "wsd":
        start = steps - max(1, int(round(decay * steps)))
        if step < start:
            return lr
        t = (step - start + 1) / max(1, steps - start)
        return lr * (1 - (1 - min_ratio) * t)
    t = (step - w) / max(1, steps - 1 - w)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def newton_schulz(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately orthogonalise ``G`` (the quintic iteration of Muon, Jordan et al. 2024,
    https://kellerjordan.github.io/posts/muon/, coefficients (3.4445, -4.7750, 2.0315))."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / (G.norm() + 1e-7)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


class Muon(torch.optim.Optimizer):
    """Momentum + orthogonalised updates for the 2-D hidden weights (embeddings, output layer, norms and biases
    go to AdamW, as the method prescribes). Update scale ``max(1, rows / cols) ** 0.5``."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                g = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                update = newton_schulz(g)
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * max(1.0, p.shape[0] / p.shape[1]) ** 0.5)


class Optimizers:
    """One or two optimisers stepped together, with one learning-rate scale; state dicts for checkpoints."""

    def __init__(self, opts: list[torch.optim.Optimizer]):
        self.opts = opts
        self.base = [[g["lr"] for g in o.param_groups] for o in opts]

    def set_scale(self, scale: float) -> None:
        for o, base in zip(self.opts, self.base):
            for g, lr in zip(o.param_groups, base):
                g["lr"] = lr * scale

    def step(self) -> None:
        for o in self.opts:
            o.step()

    def zero_grad(self) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {str(i): o.state_dict() for i, o in enumerate(self.opts)}

    def load_state_dict(self, state: dict) -> None:
        for i, o in enumerate(self.opts):
            o.load_state_dict(state[str(i)])


def make_optimizer(model: torch.nn.Module, name: str = "adamw", lr: float = 3e-3, weight_decay: float = 0.1,
                   betas=(0.9, 0.95), muon_lr: float = 0.02) -> Optimizers:
    """AdamW (decay on 2-D weights only) or Muon for the hidden 2-D weights + AdamW for the rest."""
    if name not in OPTIMIZERS:
        raise ShoestringError(f"unknown optimizer '{name}'", f"use one of: {', '.join(OPTIMIZERS)}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    hidden = [p for n, p in named if p.ndim == 2 and n.startswith("blocks.")] if name == "muon" else []
    ids = {id(p) for p in hidden}
    decay = [p for n, p in named if p.ndim >= 2 and id(p) not in ids]
    rest = [p for n, p in named if p.ndim < 2 and id(p) not in ids]
    adam = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=betas, foreach=True)
    return Optimizers([adam] + ([Muon(hidden, lr=muon_lr, weight_decay=weight_decay)] if hidden else []))
