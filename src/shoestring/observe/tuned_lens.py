"""The tuned lens: one affine translator per layer, then the model's own final norm and unembedding.

Belrose et al., "Eliciting Latent Predictions from Transformers with the Tuned Lens" (2023),
https://arxiv.org/abs/2303.08112 . The paper trains each translator ``h -> A h + b`` by SGD on the KL
divergence to the final distribution. On a CPU, 30 layers x 49k-token vocabulary x 1M tokens of logits is
out of reach, so we fit the same affine map in closed form instead: each translator is the ridge regression
(shrunk towards the identity, i.e. the logit lens) from layer ``l``'s residual to the last layer's
residual, both RMS-normalised per token (the final norm is scale-invariant, so the scale carries nothing
the unembedding can read, and normalising stops the few huge-norm "sink" tokens from dominating the fit).
The sufficient statistics (``sum x``, ``sum x x^T``, ``sum x y^T``) stream in one forward pass per batch,
so a fit over a million tokens costs one forward pass over a million tokens, is exactly resumable and can
come from an activation store just as well. :func:`lens_kl` measures what the paper measures: the mean
KL from the final distribution to each lens, per layer, on held-out text.

>>> import shoestring
>>> lm = shoestring.load()  # doctest: +SKIP
>>> tuned = fit_tuned_lens(lm, "stdlib-prose", tokens=100_000)  # doctest: +SKIP
>>> tuned.save("runs/tuned-smollm2")  # doctest: +SKIP
>>> logit_lens(lm, "The capital of France is", lens=TunedLens.load("runs/tuned-smollm2"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ShoestringError

FORMAT = "shoestring-tuned-lens/1"


def rms_normalise(x: torch.Tensor) -> torch.Tensor:
    """``x / rms(x)`` over the last axis (no weight): the direction and sign, not the scale."""
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


@dataclass
class TunedLens:
    """Translators ``h~ -> h~ @ weight[i].T + bias[i]`` for ``layers[i]`` (``h~``: the RMS-normalised residual).

    The last layer (``n_layers - 1``) needs no translator (it *is* the final residual): it passes unchanged.
    """

    n_layers: int
    layers: list[int]
    weight: torch.Tensor  # [n_layers, d_model, d_model]
    bias: torch.Tensor  # [n_layers, d_model]
    meta: dict = field(default_factory=dict)

    def translate(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        """``resid [..., d_model]`` at ``layer`` -> the translated residual ``[..., d_model]``."""
        if layer in (self.n_layers - 1, -1):
            return resid
        if layer not in self.layers:
            raise ShoestringError(f"the tuned lens has no translator for layer {layer}",
                                  f"use one of layers {self.layers[0]}..{self.layers[-1]}, or refit it")
        i = self.layers.index(layer)
        W, b = self.weight[i].to(resid.device), self.bias[i].to(resid.device)
        return (rms_normalise(resid) @ W.T + b).to(resid.dtype)

    def save(self, folder) -> Path:
        """``translators.safetensors`` + ``config.json`` into ``folder`` (each written atomically)."""
        from safetensors.torch import save_file

        from ..runs.atomic import atomic_path, write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "translators.safetensors") as tmp:
            save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(tmp))
        write_json(folder / "config.json", {"format": FORMAT, "n_layers": self.n_layers, "layers": self.layers,
                                            **self.meta})
        return folder

    @classmethod
    def load(cls, folder) -> TunedLens:
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg_path, w_path = folder / "config.json", folder / "translators.safetensors"
        if not cfg_path.is_file() or not w_path.is_file():
            raise ShoestringError(f"{folder} holds no tuned lens (config.json + translators.safetensors)",
                                  "fit one with `shoestring observe tuned-lens MODEL --out FOLDER`")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("format") != FORMAT:
            raise ShoestringError(f"{cfg_path} has format {cfg.get('format')!r}, not {FORMAT!r}",
                                  "refit the lens with this version of shoestring")
        tensors = load_file(str(w_path))
        n_layers, layers = cfg.pop("n_layers"), cfg.pop("layers")
        cfg.pop("format")
        return cls(n_layers, layers, tensors["weight"], tensors["bias"], cfg)

    def check_model(self, lm) -> None:
        d = lm.anatomy.d_model
        if self.weight.shape[-1] != d or self.n_layers != lm.n_layers:
            raise ShoestringError(
                f"this tuned lens was fitted for {self.meta.get('model', 'another model')} "
                f"(d_model {self.weight.shape[-1]}, {len(self.layers)} layers), not this model "
                f"(d_model {d}, {lm.n_layers} layers)", "fit a tuned lens for this model")


class LensMoments:
    """Streaming sufficient statistics of ``(h~_l, h~_last)`` for every layer, in float64.

    ``add`` takes ``xs [n_layers, N, d]`` and ``y [N, d]`` (already normalised); ``solve`` returns the
    ridge translators; ``state``/``from_state`` make a fit resumable.
    """

    def __init__(self, n_layers: int, d: int):
        self.n = 0
        self.sx = torch.zeros(n_layers, d, dtype=torch.float64)
        self.sy = torch.zeros(d, dtype=torch.float64)
        self.sxx = torch.zeros(n_layers, d, d, dtype=torch.float64)
        self.sxy = torch.zeros(n_layers, d, d, dtype=torch.float64)

    def add(self, xs: torch.Tensor, y: torch.Tensor) -> None:
        xs, y = xs.float(), y.float()
        self.n += y.shape[0]
        self.sx += xs.sum(1).double()
        self.sy += y.sum(0).double()
        # float32 products per batch (fast), summed into float64 across batches (exact enough for 1M rows)
        self.sxx += torch.bmm(xs.transpose(1, 2), xs).double()
        self.sxy += torch.matmul(xs.transpose(1, 2), y).double()

    def solve(self, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Per layer ``A = argmin sum ||y - A x - b||^2 + lam n ||A - I||^2``, ``lam = ridge * tr(Cov x) / d``."""
        if self.n < 2:
            raise ShoestringError(f"the tuned lens saw {self.n} tokens", "fit it on more text")
        n, d = self.n, self.sy.shape[0]
        mx, my = self.sx / n, self.sy / n  # [L, d], [d]
        cxx = self.sxx / n - mx[:, :, None] * mx[:, None, :]  # [L, d, d]
        cxy = self.sxy / n - mx[:, :, None] * my[None, None, :]
        eye = torch.eye(d, dtype=torch.float64)
        lam = ridge * torch.diagonal(cxx, dim1=1, dim2=2).sum(-1) / d  # [L]
        A = torch.stack([_ridge_solve(cxx[i], cxy[i] + lam[i] * eye, float(lam[i])).T for i in range(len(cxx))])
        b = my[None] - torch.einsum("lij,lj->li", A, mx)
        return A.float(), b.float()

    def state(self) -> dict:
        return {"n": torch.tensor([self.n], dtype=torch.int64), "sx": self.sx, "sy": self.sy,
                "sxx": self.sxx, "sxy": self.sxy}

    @classmethod
    def from_state(cls, s: dict) -> LensMoments:
        m = cls(*s["sx"].shape)
        m.n, m.sx, m.sy, m.sxx, m.sxy = int(s["n"][0]), s["sx"], s["sy"], s["sxx"], s["sxy"]
        return m


def _ridge_solve(cov: torch.Tensor, rhs: torch.Tensor, lam: float) -> torch.Tensor:
    """``(cov + lam I)^-1 rhs`` through the eigendecomposition of the symmetric ``cov``.

    Float32 sums of a near-constant, large coordinate (the "massive activation" dimensions) can leave the
    covariance a hair below positive semi-definite, where Cholesky fails; clamping the eigenvalues at 0
    removes that rounding, and the floor keeps ``ridge=0`` on rank-deficient data finite (least norm).
    """
    w, V = torch.linalg.eigh((cov + cov.T) / 2)
    w = w.clamp(min=0) + lam
    w = w.clamp(min=float(w.max()) * 1e-12 + 1e-30)
    return V @ ((V.T @ rhs) / w[:, None])


def residual_stack(lm, tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Every layer's ``resid_post`` for ``tokens [batch, T]``: ``[n_layers, N, d]`` (N = kept tokens)."""
    names = [f"blocks.{L}.hook_resid_post" for L in range(lm.n_layers)]
    _, acts = lm.run_with_cache(tokens, names, stop_early=True)
    stack = torch.stack([acts[n] for n in names])  # [L, batch, T, d]
    stack = stack.flatten(1, 2)
    return stack if keep is None else stack[:, keep.flatten().to(stack.device)]
