"""The sparse autoencoder every variant shares: parameters, encode / decode / error term, and its config.

An SAE maps an activation ``x [.., d_in]`` to latents ``z = act(W_enc^T (x - b_dec) + b_enc) [.., d_sae]`` and
back to ``x_hat = W_dec^T z + b_dec``. Variants (ReLU + L1, TopK, BatchTopK, JumpReLU) differ only in the
activation and the training penalty: each lives in its own file and overrides :meth:`SAE.activate` and
:meth:`SAE.penalty`. A *transcoder* is the same module trained to predict another hook's activation
(``cfg.hook_name_out``, e.g. the MLP output from the MLP input; Dunefsky et al. 2024,
https://arxiv.org/abs/2406.11944).

Parameter names and shapes follow SAELens (``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc``,
``b_dec``), so checkpoints move both ways (see :mod:`shoestring.sae.format`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..errors import ShoestringError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class SAEConfig:
    """What an SAE is: sizes, variant, where it reads (and, for a transcoder, writes) in the model.

    ``k`` is the number of active latents for ``topk`` / ``batchtopk``; ``scaling_factor`` multiplies raw
    activations before encoding (1.0 once folded into the weights, which :meth:`SAE.fold_scaling` does).
    """

    d_in: int
    d_sae: int
    architecture: str = "topk"
    k: int | None = None
    hook_name: str = ""
    hook_name_out: str | None = None  # transcoders: the hook whose activation is reconstructed
    model_name: str = ""
    apply_b_dec_to_input: bool = True
    scaling_factor: float = 1.0
    dtype: str = "float32"
    device: str = "cpu"
    extra: dict = field(default_factory=dict)  # variant hyper-parameters (l1_coefficient, bandwidth, ...)

    @property
    def is_transcoder(self) -> bool:
        return bool(self.hook_name_out) and self.hook_name_out != self.hook_name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SAE(nn.Module):
    """Base class: override :meth:`activate` (pre-activations -> latents) and, for training, :meth:`penalty`.

    Shapes: ``x [batch, d_in]`` -> ``pre, z [batch, d_sae]`` -> ``x_hat [batch, d_out]`` (``d_out = d_in``
    except for a transcoder whose output hook has another width, kept in ``cfg.extra["d_out"]``).
    """

    architecture = "base"

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        check_config(cfg)
        self.cfg = cfg
        d_out = int(cfg.extra.get("d_out", cfg.d_in))
        dtype, device = DTYPES[cfg.dtype], torch.device(cfg.device)
        self.W_enc = nn.Parameter(torch.empty(cfg.d_in, cfg.d_sae, dtype=dtype, device=device))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype, device=device))
        self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, d_out, dtype=dtype, device=device))
        self.b_dec = nn.Parameter(torch.zeros(d_out, dtype=dtype, device=device))
        self.reset_parameters()

    # -- initialisation -------------------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Unit-norm random decoder rows and the encoder as their transpose (Gao et al. 2024, sec. A.1;
        https://arxiv.org/abs/2406.04093); zero biases."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        w = torch.randn(self.W_dec.shape, generator=gen, dtype=torch.float32)
        w /= w.norm(dim=1, keepdim=True).clamp_min(1e-8)
        self.W_dec.copy_(w)
        if self.W_enc.shape == self.W_dec.T.shape:
            self.W_enc.copy_(w.T)
        else:  # transcoder with another output width
            self.W_enc.copy_(torch.randn(self.W_enc.shape, generator=gen) / self.W_enc.shape[0] ** 0.5)
        self.b_enc.zero_()
        self.b_dec.zero_()

    # -- the forward path -----------------------------------------------------------------------
    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """``[.., d_in] -> [.., d_sae]`` before the activation (input scaling and b_dec applied)."""
        x = x.to(self.W_enc.dtype)
        if self.cfg.scaling_factor != 1.0:
            x = x * self.cfg.scaling_factor
        if self.cfg.apply_b_dec_to_input and not self.cfg.is_transcoder:
            x = x - self.b_dec
        if x.ndim == 2:
            return torch.addmm(self.b_enc, x, self.W_enc)  # one fused pass over [batch, d_sae]
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """Pre-activations -> latents (the one method every variant overrides)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents ``[.., d_sae]`` of activations ``[.., d_in]``."""
        return self.activate(self.pre_acts(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``[.., d_out]`` in the raw (unscaled) units of the model."""
        out = z.to(self.W_dec.dtype) @ self.W_dec + self.b_dec
        return out / self.cfg.scaling_factor if self.cfg.scaling_factor != 1.0 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def error(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """The part the SAE misses, ``target - x_hat`` (``target = x`` for an SAE). Interventions that edit
        latents add it back so that only the edit changes the model (``decode(z') + error``)."""
        return (x if target is None else target).to(self.W_dec.dtype) - self.forward(x)

    # -- training hooks -------------------------------------------------------------------------
    def penalty(self, z: torch.Tensor, pre: torch.Tensor, x: torch.Tensor, residual: torch.Tensor,
                state: dict) -> tuple[torch.Tensor | None, dict]:
        """Extra loss for training (sparsity, auxiliary); ``state`` holds ``progress`` (0..1), ``dead``
        (bool mask of dead latents) and other trainer facts. Returns ``(loss or None, metrics)``."""
        return None, {}

    def train_forward(self, x: torch.Tensor, target: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One training forward on scaled inputs: ``(loss, info)`` with ``info["sse"]`` (summed squared
        error, a float), ``info["l0"]``, ``info["fired"]`` (bool ``[d_sae]``), ``info["counts"]`` (tokens each latent fired on) and the variant's metrics.
        TopK overrides this with a sparse path."""
        pre = self.pre_acts(x)
        z = self.activate(pre)
        x_hat = z @ self.W_dec + self.b_dec
        residual = target - x_hat
        sse = residual.pow(2).sum()
        extra, metrics = self.penalty(z, pre, x, residual, state)
        loss = sse / x.shape[0] if extra is None else sse / x.shape[0] + extra
        active = z.detach() > 0
        counts = active.sum(0)
        info = {"sse": float(sse.detach()), "l0": float(active.sum(-1).float().mean()), "fired": counts > 0, "counts": counts, **metrics}
        return loss, info

    @torch.no_grad()
    def set_decoder_norm_to_unit(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the part of the decoder gradient that would change row norms (Bricken et al. 2023)."""
        if self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
        self.W_dec.grad -= (self.W_dec.grad * w).sum(-1, keepdim=True) * w

    @torch.no_grad()
    def fold_scaling(self) -> None:
        """Fold ``cfg.scaling_factor`` into the weights so the SAE reads and writes raw activations."""
        s = self.cfg.scaling_factor
        if s == 1.0:
            return
        self.W_enc *= s
        self.W_dec /= s
        self.b_dec /= s
        self.fold_scaling_extra(s)
        self.cfg.scaling_factor = 1.0

    def fold_scaling_extra(self, s: float) -> None:
        """Variants with more parameters in input units override this (none do: thresholds act on pre-acts)."""

    def extra_state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors beyond W_enc/b_enc/W_dec/b_dec that a checkpoint keeps (JumpReLU's threshold)."""
        return {}

    def __repr__(self) -> str:
        c = self.cfg
        k = f", k={c.k}" if c.k else ""
        return f"{type(self).__name__}({c.d_in}->{c.d_sae}{k}, hook={c.hook_name!r})"


def check_config(cfg: SAEConfig) -> None:
    """Refuse impossible configurations with one line each."""
    if cfg.d_in < 1 or cfg.d_sae < 1:
        raise ShoestringError(f"SAE sizes d_in={cfg.d_in}, d_sae={cfg.d_sae} must be positive", "pass the hook's width and a width >= 1")
    if cfg.dtype not in DTYPES:
        raise ShoestringError(f"unknown SAE dtype '{cfg.dtype}'", f"use one of {', '.join(DTYPES)}")
    if cfg.architecture in ("topk", "batchtopk"):
        if cfg.k is None or cfg.k < 1:
            raise ShoestringError(f"a {cfg.architecture} SAE needs k >= 1 (got {cfg.k})", "pass --k, e.g. --k 32")
        if cfg.k > cfg.d_sae:
            raise ShoestringError(f"k={cfg.k} is larger than the SAE width {cfg.d_sae}", f"pass k <= {cfg.d_sae} or a wider SAE")
    if not cfg.scaling_factor > 0:
        raise ShoestringError(f"scaling_factor {cfg.scaling_factor} must be positive", "fix cfg.json or leave it at 1.0")
