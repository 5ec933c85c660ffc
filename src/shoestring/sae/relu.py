"""ReLU SAE with an L1 penalty weighted by decoder norms (Bricken et al. 2023, "Towards
Monosemanticity", https://transformer-circuits.pub/2023/monosemantic-features; the norm-weighted form
of Anthropic's April 2024 update, https://transformer-circuits.pub/2024/april-update).

``z = ReLU(pre)``; loss ``||x - x_hat||^2 + lambda * sum_i z_i ||W_dec[i]||``. ``lambda`` is
``cfg.extra["l1_coefficient"]`` (default 5.0 on inputs scaled to ``E||x||^2 = d_in``), warmed up linearly
over the trainer's ``l1_warmup`` fraction so that early training does not kill latents.
"""

from __future__ import annotations

import torch

from .base import SAE


class ReLUSAE(SAE):
    architecture = "standard"

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre.relu()

    def penalty(self, z, pre, x, residual, state):
        lam = float(self.cfg.extra.get("l1_coefficient", 5.0)) * float(state.get("l1_scale", 1.0))
        l1 = (z * self.W_dec.norm(dim=1)).sum(-1).mean()
        return lam * l1, {"l1": float(l1.detach())}
