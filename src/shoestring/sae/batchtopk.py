"""BatchTopK SAE (Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders",
https://arxiv.org/abs/2412.06410).

Training keeps the ``batch * k`` largest activations across the whole batch instead of ``k`` per token,
so L0 averages ``k`` but varies with the token. Inference cannot depend on the batch: a single threshold
``theta`` (a running mean, over training steps, of the smallest activation kept) replaces it, and the SAE
becomes a JumpReLU with that threshold, which is also how it is saved. AuxK revives dead latents as in
:mod:`shoestring.sae.topk`.
"""

from __future__ import annotations

import torch

from .base import SAE


class BatchTopKSAE(SAE):
    architecture = "batchtopk"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.register_buffer("threshold_estimate", torch.tensor(-1.0, dtype=torch.float32, device=self.W_enc.device))

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        acts = pre.relu()
        if self.training and torch.is_grad_enabled():
            flat = acts.reshape(-1)
            n = min(self.cfg.k * (flat.numel() // acts.shape[-1]), flat.numel())
            vals, idx = flat.topk(n, sorted=False)
            kept = torch.zeros_like(flat).scatter_(0, idx, vals).reshape(acts.shape)
            positive = vals[vals > 0]
            if positive.numel():
                low = positive.min().detach().float()
                t = self.threshold_estimate
                t.copy_(low if t < 0 else 0.99 * t + 0.01 * low)
            return kept
        theta = self.threshold_estimate.clamp_min(0).to(acts.dtype)
        return acts * (acts > theta)

    def penalty(self, z, pre, x, residual, state):
        dead = state.get("dead")
        if dead is None or not bool(dead.any()):
            return None, {}
        k_aux = min(int(self.cfg.extra.get("aux_k", max(1, self.cfg.d_in // 2))), int(dead.sum()))
        vals, idx = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1, sorted=False)
        aux_z = torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
        e = residual.detach()
        aux = (e - aux_z @ self.W_dec).pow(2).sum(-1).mean() / e.pow(2).sum(-1).mean().clamp_min(1e-12)
        coef = float(self.cfg.extra.get("aux_coefficient", 1 / 32))
        return coef * aux * e.pow(2).sum(-1).mean(), {"aux": float(aux.detach())}

    def extra_state_tensors(self) -> dict[str, torch.Tensor]:
        theta = float(self.threshold_estimate.clamp_min(0))
        return {"threshold": torch.full((self.cfg.d_sae,), theta, dtype=self.W_enc.dtype)}

    @torch.no_grad()
    def load_extra(self, tensors: dict) -> None:
        self.threshold_estimate.fill_(float(tensors["threshold"].float().mean()))
