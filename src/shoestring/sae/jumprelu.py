"""JumpReLU SAE trained with straight-through estimators (Rajamanoharan et al. 2024, "Jumping Ahead:
Improving Reconstruction Fidelity with JumpReLU Sparse Autoencoders", https://arxiv.org/abs/2407.14435).

``z = pre * H(pre - theta)`` with a learned per-latent threshold ``theta = exp(log_threshold)``; the loss
penalises L0 directly, ``||x - x_hat||^2 + lambda * sum_i H(pre_i - theta_i)``. The step function has no
useful gradient, so ``theta`` gets the paper's pseudo-derivative: a rectangle kernel of width
``bandwidth`` around the threshold (eqs. 11-12). Extras: ``l0_coefficient`` (lambda, default 1.0),
``bandwidth`` (0.001) and ``threshold_init`` (0.001). Gemma Scope checkpoints are JumpReLU SAEs.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .base import SAE


def _kernel(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, bandwidth: float):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = g * (pre > theta)
        grad_theta = (-(theta / eps) * _kernel((pre - theta) / eps) * g).sum(0)
        return grad_pre, grad_theta, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, bandwidth: float):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        return None, (-(1.0 / eps) * _kernel((pre - theta) / eps) * g).sum(0), None


class JumpReLUSAE(SAE):
    architecture = "jumprelu"

    def __init__(self, cfg):
        super().__init__(cfg)
        init = float(cfg.extra.get("threshold_init", 1e-3))
        self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), math.log(init), dtype=self.W_enc.dtype, device=self.W_enc.device))

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        theta = self.threshold
        if torch.is_grad_enabled() and (pre.requires_grad or theta.requires_grad):
            return _JumpReLU.apply(pre, theta, float(self.cfg.extra.get("bandwidth", 1e-3)))
        return pre * (pre > theta)

    def penalty(self, z, pre, x, residual, state):
        lam = float(self.cfg.extra.get("l0_coefficient", 1.0)) * float(state.get("l1_scale", 1.0))
        l0 = _Step.apply(pre, self.threshold, float(self.cfg.extra.get("bandwidth", 1e-3))).sum(-1).mean()
        return lam * l0, {"l0_penalty": float(l0.detach())}

    def extra_state_tensors(self) -> dict[str, torch.Tensor]:
        return {"threshold": self.threshold.detach()}

    @torch.no_grad()
    def load_extra(self, tensors: dict) -> None:
        self.log_threshold.copy_(tensors["threshold"].to(self.log_threshold.dtype).clamp_min(1e-12).log())
