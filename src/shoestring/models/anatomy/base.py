"""Where things live inside an unmodified Hugging Face causal LM.

A :class:`Layout` names, relative to one decoder block, the attention module, the norms, the MLP,
the q/k/v and output projections and the neuron site. One small file per family declares one
``Layout``; :func:`shoestring.models.anatomy.detect` matches a model to a layout by its module
structure (the names and the set of norm modules inside a block), never by class name, so a new
family that follows a known layout is recognised as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn


def get_path(root: nn.Module, path: str | None) -> nn.Module | None:
    """``root.a.b`` for ``path="a.b"``; ``None`` where any part is missing."""
    if path is None:
        return None
    mod = root
    for part in path.split("."):
        mod = getattr(mod, part, None)
        if mod is None:
            return None
    return mod if isinstance(mod, nn.Module) else None


def is_norm(module: nn.Module) -> bool:
    """LayerNorm, RMSNorm and family-specific norm classes (by their class name, which all end so)."""
    name = type(module).__name__.lower()
    return isinstance(module, nn.LayerNorm) or name.endswith("norm") or "rmsnorm" in name or "layernorm" in name


@dataclass(frozen=True)
class Layout:
    """The layout of one decoder block, as paths relative to the block.

    Parameters
    ----------
    name
        Layout name, e.g. ``"llama"``.
    families
        HF ``model_type`` values known to use this layout (for ``shoestring models``; detection
        never relies on it).
    attn
        Attention module.
    qkv
        Either ``("q_proj", "k_proj", "v_proj")`` (relative to ``attn``) or a single fused module name.
    qkv_kind
        ``"separate"``, ``"concat"`` (fused ``[q | k | v]``) or ``"interleaved"`` (GPT-NeoX:
        ``[head, 3, d_head]``).
    o_proj
        Output projection, relative to ``attn``; its input is ``hook_z``.
    norms
        Every norm that is a direct child of the block, by role: ``ln1`` (before attention),
        ``ln2`` (before the MLP), ``attn_post`` (applied to the attention output before the residual
        add, Gemma 2 / OLMo 2), ``mlp_post`` (likewise for the MLP).
    mlp
        The MLP (or mixture-of-experts) module, or ``None`` where its linears sit on the block (OPT).
    mlp_out
        Where the MLP branch ends, if not ``mlp`` (OPT: ``"fc2"``).
    down
        The down projection whose *input* is ``mlp.hook_post`` (the neurons); ``None`` for fused
        experts.
    parallel
        ``True`` when attention and MLP both read the block input (GPT-J, Phi, Pythia), or a function
        of the config.
    attention_interface
        Whether the attention module calls transformers' ``ALL_ATTENTION_FUNCTIONS`` (all modern
        families); GPT-J computes attention itself and always returns the pattern.
    """

    name: str
    families: tuple[str, ...]
    attn: str
    qkv: tuple[str, ...]
    o_proj: str
    norms: dict[str, str]
    mlp: str | None
    down: str | None
    qkv_kind: str = "separate"
    mlp_out: str | None = None
    parallel: bool | Callable = False
    attention_interface: bool = True
    moe: bool = False
    requires: tuple[str, ...] = ()  # further paths (relative to the block) that must exist
    extra: dict = field(default_factory=dict)

    def is_parallel(self, config) -> bool:
        return self.parallel(config) if callable(self.parallel) else bool(self.parallel)

    def matches(self, block: nn.Module) -> bool:
        """True when every declared path exists and the block's own norms are exactly ``norms``."""
        attn = get_path(block, self.attn)
        if attn is None or get_path(attn, self.o_proj) is None:
            return False
        if any(get_path(attn, p) is None for p in self.qkv):
            return False
        for path in (self.mlp, self.mlp_out, self.down, *self.requires):
            if path is not None and get_path(block, path) is None:
                return False
        own_norms = {n for n, m in block.named_children() if is_norm(m)}
        return own_norms == set(self.norms.values())
