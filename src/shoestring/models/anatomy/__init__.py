"""Map any supported HF causal LM onto one :class:`Anatomy`, from its module structure.

>>> from transformers import LlamaConfig, AutoModelForCausalLM
>>> model = AutoModelForCausalLM.from_config(LlamaConfig(num_hidden_layers=2, hidden_size=32,
...     num_attention_heads=4, intermediate_size=64, vocab_size=100))
>>> detect(model).layout.name
'llama'
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ...errors import ShoestringError
from .base import Layout, get_path, is_norm
from . import gemma2, gpt2, gpt_neox, gptj, llama, mixtral, olmo2, opt, phi, phi3
from ...registry import add

LAYOUTS: dict[str, Layout] = {}


def register(layout: Layout) -> Layout:
    """Add a layout; a duplicate name raises."""
    return add(LAYOUTS, layout.name, layout, "layout")


for _mod in (gemma2, olmo2, phi3, mixtral, llama, gpt2, gpt_neox, gptj, opt, phi):
    register(_mod.LAYOUT)


@dataclass
class BlockParts:
    """The modules of one decoder block, resolved."""

    block: nn.Module
    attn: nn.Module
    qkv: tuple[nn.Module, ...]  # 3 separate projections, or 1 fused one
    o_proj: nn.Module
    ln1: nn.Module | None
    ln2: nn.Module | None
    attn_post: nn.Module | None
    mlp_post: nn.Module | None
    mlp: nn.Module | None
    mlp_branch_out: nn.Module  # its output is what the MLP branch adds to the residual
    attn_branch_out: nn.Module  # its output is what attention adds to the residual (output[0])
    down: nn.Module | None  # its input is mlp.hook_post


@dataclass
class Anatomy:
    """Where embeddings, blocks, attention, MLP, norms and unembedding live in one model."""

    layout: Layout
    model_type: str
    blocks: nn.ModuleList
    embed: nn.Module
    pos_embed: nn.Module | None
    final_norm: nn.Module | None
    unembed: nn.Module
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int | None
    d_vocab: int
    parallel: bool
    logit_softcap: float | None
    root: nn.Module | None = None  # the whole causal LM (its output carries the final logits)

    def block(self, layer: int) -> BlockParts:
        lay = self.layout
        block = self.blocks[layer]
        attn = get_path(block, lay.attn)
        norms = {role: get_path(block, path) for role, path in lay.norms.items()}
        mlp = get_path(block, lay.mlp)
        mlp_end = norms.get("mlp_post") or get_path(block, lay.mlp_out) or mlp
        return BlockParts(
            block=block,
            attn=attn,
            qkv=tuple(get_path(attn, p) for p in lay.qkv),
            o_proj=get_path(attn, lay.o_proj),
            ln1=norms.get("ln1"),
            ln2=norms.get("ln2"),
            attn_post=norms.get("attn_post"),
            mlp_post=norms.get("mlp_post"),
            mlp=mlp,
            mlp_branch_out=mlp_end,
            attn_branch_out=norms.get("attn_post") or attn,
            down=get_path(block, lay.down),
        )

    def summary(self) -> dict:
        """A JSON-ready description."""
        return {
            "layout": self.layout.name,
            "model_type": self.model_type,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "d_head": self.d_head,
            "d_mlp": self.d_mlp,
            "d_vocab": self.d_vocab,
            "block": "parallel" if self.parallel else "sequential",
            "moe": self.layout.moe,
            "logit_softcap": self.logit_softcap,
        }


def _in_features(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.in_features
    weight = getattr(module, "weight", None)  # GPT-2's Conv1D stores [in, out]
    return int(weight.shape[0]) if weight is not None else None


def _find_blocks(model: nn.Module, n_layers: int) -> tuple[str, nn.ModuleList] | None:
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n_layers and len({type(m) for m in mod}) == 1:
            return name, mod
    return None


def detect(model: nn.Module) -> Anatomy:
    """Build the :class:`Anatomy` of ``model`` from its module structure.

    Raises
    ------
    ShoestringError
        When no known layout matches, naming what was not found.
    """
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    n_layers = getattr(config, "num_hidden_layers", None)
    if n_layers is None:
        raise ShoestringError(
            f"{type(model).__name__}: its config has no num_hidden_layers",
            "shoestring maps decoder-only causal LMs; pass an AutoModelForCausalLM",
        )
    found = _find_blocks(model, n_layers)
    if found is None:
        raise ShoestringError(
            f"{type(model).__name__}: no list of {n_layers} identical decoder blocks found",
            "is this a decoder-only causal LM? add a layout in shoestring/models/anatomy/",
        )
    blocks_path, blocks = found
    block = blocks[0]
    layout = next((lay for lay in LAYOUTS.values() if lay.matches(block)), None)
    if layout is None:
        children = ", ".join(f"{n}:{type(m).__name__}" for n, m in block.named_children())
        raise ShoestringError(
            f"{type(model).__name__}: no known layout matches block {type(block).__name__} ({children})",
            f"known layouts: {', '.join(LAYOUTS)}; add one in shoestring/models/anatomy/",
        )
    parent = get_path(model, blocks_path.rsplit(".", 1)[0]) if "." in blocks_path else model
    embed = model.get_input_embeddings()
    final_norms = [m for _, m in parent.named_children() if is_norm(m)]
    pos = [
        m for _, m in parent.named_children() if isinstance(m, nn.Embedding) and m is not embed
    ]
    unembed = model.get_output_embeddings()
    if unembed is None:
        raise ShoestringError(f"{type(model).__name__} has no output embedding", "load it as AutoModelForCausalLM")
    n_heads = config.num_attention_heads
    d_model = config.hidden_size
    d_head = getattr(config, "head_dim", None) or d_model // n_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    anatomy = Anatomy(
        layout=layout,
        model_type=getattr(config, "model_type", "?"),
        blocks=blocks,
        embed=embed,
        pos_embed=pos[0] if len(pos) == 1 else None,
        final_norm=final_norms[0] if len(final_norms) == 1 else None,
        unembed=unembed,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_head=d_head,
        d_mlp=None,
        d_vocab=unembed.weight.shape[0],
        parallel=layout.is_parallel(config),
        logit_softcap=getattr(config, "final_logit_softcapping", None),
        root=model,
    )
    down = anatomy.block(0).down
    anatomy.d_mlp = _in_features(down) if down is not None else getattr(config, "intermediate_size", None)
    return anatomy


__all__ = ["Anatomy", "BlockParts", "Layout", "LAYOUTS", "detect", "register"]
