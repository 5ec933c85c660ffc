"""TopK SAE with the AuxK loss for dead latents (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders", https://arxiv.org/abs/2406.04093).

Only the ``k`` largest pre-activations of each token survive (then a ReLU), so L0 <= k by construction and
no sparsity penalty is needed. AuxK: the ``k_aux`` largest pre-activations among *dead* latents try to
reconstruct the main residual, scaled by ``aux_coefficient`` (1/32 in the paper), which revives them.

Training is sparse end to end, as the paper's kernels are (sec. D.3): the encoder matmul is the only dense
product. The decoder and every backward pass touch only the ``batch x k`` active entries, through
``embedding_bag`` (forward and its fused backward), so a step costs about a fifth of the dense version's
FLOPs on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import SAE


class _SelectedPre(torch.autograd.Function):
    """``vals[b, j] = (x[b] - b_dec) . W_enc[:, idx[b, j]] + b_enc[idx[b, j]]`` with sparse gradients.

    The forward value is the already computed ``vals``; the backward accumulates ``g[b, j] * x_in[b]``
    into column ``idx[b, j]`` of ``W_enc`` (the gradient kernel of ``embedding_bag``) instead of a dense
    ``[d_in, batch] @ [batch, d_sae]`` product.
    """

    @staticmethod
    def forward(ctx, vals, x_in, W_enc, b_enc, b_dec, idx, use_b_dec: bool):
        ctx.save_for_backward(x_in, W_enc, idx)
        ctx.use_b_dec = use_b_dec
        return vals

    @staticmethod
    def backward(ctx, g):
        x_in, W_enc, idx = ctx.saved_tensors
        d_in, d_sae = W_enc.shape
        g = g.contiguous().to(W_enc.dtype)  # bf16 under autocast; embedding_bag wants one dtype
        per_latent = torch.zeros(d_sae, dtype=g.dtype, device=g.device).index_add_(0, idx.reshape(-1), g.reshape(-1))
        grad_W = grad_b_dec = None
        if ctx.needs_input_grad[2]:
            with torch.enable_grad():
                dummy = torch.zeros(d_sae, d_in, dtype=W_enc.dtype, device=W_enc.device, requires_grad=True)
                bags = F.embedding_bag(idx, dummy, per_sample_weights=g, mode="sum")
                (grad_t,) = torch.autograd.grad(bags, dummy, grad_outputs=x_in)
            grad_W = grad_t.T
        if ctx.use_b_dec and ctx.needs_input_grad[4]:
            grad_b_dec = -(per_latent @ W_enc.T)
        return None, None, grad_W, per_latent, grad_b_dec, None, None


def sparse_decode(idx: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """``sum_j vals[b, j] * W_dec[idx[b, j]]`` -> ``[batch, d_out]`` without forming ``[batch, d_sae]``."""
    return F.embedding_bag(idx, W_dec, per_sample_weights=vals.to(W_dec.dtype), mode="sum")


class TopKSAE(SAE):
    """``z = ReLU(TopK_k(pre))``. Extras (``cfg.extra``): ``aux_k`` (default ``d_in // 2``), ``aux_coefficient``
    (default 1/32)."""

    architecture = "topk"

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())

    def _select(self, x, pre, k, mask=None):
        """Top-``k`` of ``pre`` (optionally among ``mask`` only), differentiable into the encoder."""
        scores = pre if mask is None else pre.masked_fill(~mask, float("-inf"))
        vals, idx = scores.topk(k, dim=-1, sorted=False)  # finite: k <= mask.sum() for the aux call
        use_b_dec = self.cfg.apply_b_dec_to_input and not self.cfg.is_transcoder
        x_in = x - self.b_dec.detach() if use_b_dec else x
        return _SelectedPre.apply(vals, x_in, self.W_enc, self.b_enc, self.b_dec, idx, use_b_dec), idx

    def train_forward(self, x: torch.Tensor, target: torch.Tensor, state: dict):
        x = x.to(self.W_enc.dtype)
        target = target.to(self.W_dec.dtype)
        with torch.no_grad():
            pre = self.pre_acts(x)  # [batch, d_sae]: the one dense product
        vals, idx = self._select(x, pre, self.cfg.k)
        z = vals.relu()
        x_hat = sparse_decode(idx, z, self.W_dec) + self.b_dec
        residual = target - x_hat
        sse = residual.pow(2).sum()
        loss = sse / x.shape[0]
        metrics = {}
        dead = state.get("dead")
        if dead is not None and bool(dead.any()) and self.training:
            k_aux = min(int(self.cfg.extra.get("aux_k", max(1, self.cfg.d_in // 2))), int(dead.sum()))
            aux_vals, aux_idx = self._select(x, pre, k_aux, mask=dead.expand_as(pre))
            aux_hat = sparse_decode(aux_idx, aux_vals.relu(), self.W_dec)
            e = residual.detach()
            aux = (e - aux_hat).pow(2).sum(-1).mean() / e.pow(2).sum(-1).mean().clamp_min(1e-12)
            coef = float(self.cfg.extra.get("aux_coefficient", 1 / 32))
            loss = loss + coef * aux * (sse.detach() / x.shape[0])  # normalised, in units of the MSE
            metrics["aux"] = float(aux.detach())
        active = z.detach() > 0
        counts = torch.bincount(idx[active], minlength=self.cfg.d_sae)
        info = {"sse": float(sse.detach()), "l0": float(active.sum(-1).float().mean()), "fired": counts > 0, "counts": counts, **metrics}
        return loss, info
