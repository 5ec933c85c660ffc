"""Sparse autoencoders: variants, training from a store or a stream, honest evaluation, SAELens-format
checkpoints, and features as pages.

>>> from shoestring.sae import make_sae
>>> sae = make_sae("topk", d_in=64, d_sae=256, k=8)
>>> sae.encode(__import__("torch").randn(3, 64)).shape
torch.Size([3, 256])
"""

from __future__ import annotations

from ..errors import ShoestringError, nearest
from ..registry import add
from .base import SAE, SAEConfig
from .batchtopk import BatchTopKSAE
from .jumprelu import JumpReLUSAE
from .relu import ReLUSAE
from .topk import TopKSAE

ARCHITECTURES: dict[str, type[SAE]] = {}
for _cls in (ReLUSAE, TopKSAE, BatchTopKSAE, JumpReLUSAE):
    add(ARCHITECTURES, _cls.architecture, _cls, "SAE architecture")
ALIASES = {"relu": "standard", "l1": "standard", "gated": None}


def sae_class(architecture: str) -> type[SAE]:
    name = ALIASES.get(architecture, architecture)
    if name not in ARCHITECTURES:
        hint = nearest(architecture, ARCHITECTURES)
        raise ShoestringError(f"unknown SAE architecture '{architecture}'",
                              f"use one of {', '.join(ARCHITECTURES)}" + (f" (did you mean {hint[0]}?)" if hint else ""))
    return ARCHITECTURES[name]


def make_sae(architecture: str, d_in: int, d_sae: int, k: int | None = None, *, hook_name: str = "",
             hook_name_out: str | None = None, d_out: int | None = None, model_name: str = "",
             dtype: str = "float32", device: str = "cpu", seed: int | None = 0, **extra) -> SAE:
    """A freshly initialised SAE (or transcoder, with ``hook_name_out``) of the named architecture.

    ``extra`` holds the variant's hyper-parameters (``l1_coefficient``, ``l0_coefficient``, ``bandwidth``,
    ``aux_k``, ``aux_coefficient``, ...)."""
    cls = sae_class(architecture)
    if d_out is not None and d_out != d_in:
        extra["d_out"] = int(d_out)
    cfg = SAEConfig(d_in=int(d_in), d_sae=int(d_sae), architecture=cls.architecture, k=k, hook_name=hook_name,
                    hook_name_out=hook_name_out, model_name=model_name,
                    apply_b_dec_to_input=not (hook_name_out and hook_name_out != hook_name),
                    dtype=dtype, device=device, extra=extra)
    sae = cls(cfg)
    sae.reset_parameters(seed)
    return sae


from .format import load_sae, save_sae  # noqa: E402
from .features import FeatureStats, feature_logits, feature_stats  # noqa: E402
from .search import search_by_contrast, search_by_text  # noqa: E402

__all__ = ["SAE", "SAEConfig", "ARCHITECTURES", "make_sae", "sae_class", "load_sae", "save_sae",
           "ReLUSAE", "TopKSAE", "BatchTopKSAE", "JumpReLUSAE",
           "FeatureStats", "feature_stats", "feature_logits", "search_by_text", "search_by_contrast"]
