"""Edit one SAE latent while the model runs: clamp it to a value or flip its sign, keeping the SAE's error
term so that nothing the SAE does not explain changes (Templeton et al. 2024, "Scaling Monosemanticity",
https://transformer-circuits.pub/2024/scaling-monosemanticity/).

With ``z = encode(x)`` and the edited latents ``z'`` (only latent ``f`` differs),
``x' = decode(z') + (x - decode(z)) = x + (z'_f - z_f) * W_dec[f] / s`` (``s`` the SAE's input scaling),
so the edit is a per-token step along the latent's decoder row. Modes:

- ``clamp``: ``z'_f = scale`` (a value in the latent's own units);
- ``flip``: ``z'_f = -scale * z_f`` (``scale = 1`` mirrors the latent; it only acts where it fires).

The random control passes ``vector=``: the same per-token step ``(z'_f - z_f)`` along a random direction of
the decoder row's norm, so steered and control move the residual by exactly the same amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ShoestringError

FEATURE_MODES = ("clamp", "flip")


@dataclass
class FeatureEdit:
    """Context manager: ``with FeatureEdit(lm, sae, 123, "clamp", 10.0): lm.generate(...)``."""

    lm: object
    sae: object
    feature: int
    mode: str = "clamp"
    scale: float = 1.0
    positions: str = "all"
    vector: torch.Tensor | None = None  # [d_in]; None: the decoder row (a control passes a random one)
    offsets: torch.Tensor | None = None  # unused (set by generate for every intervention)
    _edit: object = field(default=None, repr=False)

    def __post_init__(self):
        from .apply import check_options

        check_options(self.mode, self.positions, FEATURE_MODES, "feature edit")
        if not 0 <= self.feature < self.sae.cfg.d_sae:
            raise ShoestringError(f"feature {self.feature} is out of range",
                                  f"the SAE has {self.sae.cfg.d_sae} latents: 0 to {self.sae.cfg.d_sae - 1}")
        if self.sae.cfg.is_transcoder:
            raise ShoestringError("a transcoder's latent cannot be edited in place at one hook",
                                  "edit an SAE's latent (hook_name_out unset)")
        self.lm.resolve(self.sae.cfg.hook_name)
        if self.vector is not None and self.vector.shape[-1] != self.sae.cfg.d_in:
            raise ShoestringError(f"the edit vector has width {self.vector.shape[-1]}, the SAE {self.sae.cfg.d_in}",
                                  "pass a vector of the SAE's input width")

    def row(self) -> torch.Tensor:
        """The step per unit of latent: ``W_dec[f] / s`` (or the control's vector) ``[d_in]``."""
        if self.vector is not None:
            return self.vector.detach()
        return self.sae.W_dec[self.feature].detach() / self.sae.cfg.scaling_factor

    def _fn(self):
        from .apply import skipped

        row = self.row()

        def edit(act: torch.Tensor) -> torch.Tensor | None:
            if skipped(self.positions, act):
                return None
            with torch.no_grad():
                z = self.sae.encode(act.to(self.sae.W_enc.dtype))[..., self.feature]  # [batch, pos]
            new = torch.full_like(z, float(self.scale)) if self.mode == "clamp" else -float(self.scale) * z
            return act + ((new - z)[..., None] * row.to(z.device, z.dtype)).to(act.dtype)

        return edit

    def __enter__(self):
        self._edit = self.lm.edit({self.sae.cfg.hook_name: self._fn()})
        self._edit.__enter__()
        return self

    def __exit__(self, *exc):
        return self._edit.__exit__(*exc)


def random_row(sae, feature: int, seed: int = 0) -> torch.Tensor:
    """The control's vector: random, with the norm of ``W_dec[feature] / s``."""
    row = sae.W_dec[feature].detach().float() / sae.cfg.scaling_factor
    r = torch.randn(row.shape, generator=torch.Generator().manual_seed(seed))
    return r / r.norm() * row.norm()


def clamp_feature(lm, sae, feature: int, value: float | None = None, *, flip: bool = False,
                  positions: str = "all") -> FeatureEdit:
    """Set SAE latent ``feature`` to ``value``, or with ``flip=True`` to minus its own activation, keeping the
    SAE's error term: ``x' = decode(z') + (x - decode(z))``. Returns the :class:`FeatureEdit` context."""
    if (value is None) == (not flip):
        raise ShoestringError("pass either value= (clamp) or flip=True", "e.g. clamp_feature(lm, sae, 123, value=10.0)")
    return FeatureEdit(lm, sae, feature, "flip" if flip else "clamp", 1.0 if flip else float(value), positions)
