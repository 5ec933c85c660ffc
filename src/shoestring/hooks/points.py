"""Hook points with TransformerLens names, built on the modules of an unmodified HF model.

Each :class:`PointSpec` says which module to hook, whether the activation is its input (``"in"``),
its output (``"out"``), what the attention function sees (``"attn"``), and how to read the
activation out of the raw tensor (for example a per-head view of a fused qkv projection) and write
an edited one back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from ..models.anatomy import Anatomy

Read = Callable[[torch.Tensor], torch.Tensor]
Write = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class PointSpec:
    """One hook point.

    Attributes
    ----------
    name
        TransformerLens name, e.g. ``blocks.3.hook_resid_post``.
    layer
        Block index, or ``None`` for model-level points.
    module
        The HF module hooked.
    where
        ``"in"`` (first input), ``"out"`` (output or ``output[0]``), ``"out1"`` (``output[1]``,
        the eager attention pattern), ``"logits"`` (``output.logits`` of the whole model) or
        ``"attn"`` (the attention-function tap).
    shape
        The activation's axes, e.g. ``"batch pos d_model"``.
    read, write
        Raw tensor -> activation, and (raw, new activation) -> new raw. ``write=None``: capture only.
    propagate
        For ``hook_resid_mid``: the module whose output receives the edit's delta, so the edited
        residual reaches the block output and not only the MLP input.
    pos_dim
        The axis of query positions (1, or 2 for the pattern).
    """

    name: str
    layer: int | None
    module: nn.Module
    where: str
    shape: str
    read: Read
    write: Write | None
    propagate: nn.Module | None = None
    pos_dim: int = 1
    track: tuple | None = None  # (block, box): the block input's [batch, pos] kept in box["shape"]


def _same(raw: torch.Tensor) -> torch.Tensor:
    return raw


def _replace(raw: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    return new


def _heads(n: int, d: int) -> tuple[Read, Write]:
    """[batch, pos, n*d] <-> [batch, pos, n, d]."""
    return (lambda raw: raw.unflatten(-1, (n, d))), (lambda raw, new: new.flatten(-2))


def _concat(offset: int, n: int, d: int) -> tuple[Read, Write]:
    """One of q, k, v in a fused ``[q | k | v]`` projection (GPT-2 ``c_attn``, Phi-3 ``qkv_proj``)."""

    def read(raw):
        return raw[..., offset : offset + n * d].unflatten(-1, (n, d))

    def write(raw, new):
        raw = raw.clone()
        raw[..., offset : offset + n * d] = new.flatten(-2)
        return raw

    return read, write


def _interleaved(i: int, n: int, d: int) -> tuple[Read, Write]:
    """One of q, k, v in GPT-NeoX's ``query_key_value``, laid out ``[head, 3 * d_head]``."""

    def read(raw):
        return raw.unflatten(-1, (n, 3, d))[..., i, :]

    def write(raw, new):
        raw = raw.clone()
        raw.unflatten(-1, (n, 3, d))[..., i, :] = new
        return raw

    return read, write


def _qkv_points(anat: Anatomy, layer: int, parts) -> list[PointSpec]:
    n, nkv, d = anat.n_heads, anat.n_kv_heads, anat.d_head
    kind = anat.layout.qkv_kind
    out = []
    for i, (letter, heads) in enumerate((("q", n), ("k", nkv), ("v", nkv))):
        if kind == "separate":
            module, (read, write) = parts.qkv[i], _heads(heads, d)
        elif kind == "concat":
            offset = [0, n * d, (n + nkv) * d][i]
            module, (read, write) = parts.qkv[0], _concat(offset, heads, d)
        else:
            module, (read, write) = parts.qkv[0], _interleaved(i, heads, d)
        out.append(
            PointSpec(f"blocks.{layer}.attn.hook_{letter}", layer, module, "out", "batch pos head d_head", read, write)
        )
    return out


def build_points(anat: Anatomy) -> dict[str, PointSpec]:
    """Every hook point of the model, in forward order."""
    pts: list[PointSpec] = []

    flat = anat.layout.extra.get("flat_mlp", False)

    def add(name, layer, module, where, shape, read=_same, write=_replace, flat_mlp=False, **kw):
        if module is None:
            return
        if flat_mlp and flat:  # OPT runs its MLP on [batch * pos, d]: show it as [batch, pos, d]
            box: dict = {}
            read, write = _unflatten(read, write, box)
            kw["track"] = (anat.blocks[layer], box)
        pts.append(PointSpec(name, layer, module, where, shape, read, write, **kw))

    add("hook_embed", None, anat.embed, "out", "batch pos d_model")
    if anat.pos_embed is not None:  # GPT-2 embeds positions as [1, pos, d]: show it per batch row
        box: dict = {}
        add("hook_pos_embed", None, anat.pos_embed, "out", "batch pos d_model",
            read=lambda raw: raw.expand(box["shape"][0], *raw.shape[1:]) if raw.shape[0] == 1 else raw,
            track=(anat.embed, box))
    for L in range(anat.n_layers):
        p = anat.block(L)
        b = f"blocks.{L}"
        add(f"{b}.hook_resid_pre", L, p.block, "in", "batch pos d_model")
        add(f"{b}.ln1.hook_normalized", L, p.ln1, "out", "batch pos d_model")
        pts.extend(_qkv_points(anat, L, p))
        if anat.layout.attention_interface:
            add(f"{b}.attn.hook_rot_q", L, p.attn, "attn", "batch pos head d_head", write=None)
            add(f"{b}.attn.hook_rot_k", L, p.attn, "attn", "batch pos kv_head d_head", write=None)
            add(f"{b}.attn.hook_pattern", L, p.attn, "attn", "batch head query key", write=None, pos_dim=2)
        else:
            add(f"{b}.attn.hook_pattern", L, p.attn, "out1", "batch head query key", write=None, pos_dim=2)
        zr, zw = _heads(anat.n_heads, anat.d_head)
        add(f"{b}.attn.hook_z", L, p.o_proj, "in", "batch pos head d_head", zr, zw)
        add(f"{b}.attn.hook_result", L, p.o_proj, "in", "batch pos head d_model", _per_head_result(p.o_proj, zr), None)
        add(f"{b}.hook_attn_out", L, p.attn_branch_out, "out", "batch pos d_model")
        if not anat.parallel:
            mid = p.ln2 if p.ln2 is not None else p.mlp
            add(f"{b}.hook_resid_mid", L, mid, "in", "batch pos d_model", propagate=p.mlp_branch_out, flat_mlp=True)
        add(f"{b}.ln2.hook_normalized", L, p.ln2, "out", "batch pos d_model", flat_mlp=True)
        add(f"{b}.mlp.hook_post", L, p.down, "in", "batch pos d_mlp", flat_mlp=True)
        add(f"{b}.hook_mlp_out", L, p.mlp_branch_out, "out", "batch pos d_model", flat_mlp=True)
        add(f"{b}.hook_resid_post", L, p.block, "out", "batch pos d_model")
    add("ln_final.hook_normalized", None, anat.final_norm, "out", "batch pos d_model")
    # The model's own logits (after Gemma 2's final soft-cap, which no module applies).
    add("hook_logits", None, anat.root, "logits", "batch pos d_vocab")
    return {pt.name: pt for pt in pts}


def _unflatten(read: Read, write: Write, box: dict) -> tuple[Read, Write]:
    def r(raw):
        return read(raw.view(*box["shape"], -1))

    def w(raw, new):
        return write(raw.view(*box["shape"], -1), new).reshape(raw.shape)

    return r, w


def out_proj_weight(o_proj: nn.Module, n_heads: int) -> torch.Tensor:
    """The output projection as ``[head, d_head, d_model]`` (nn.Linear or GPT-2's Conv1D)."""
    w = o_proj.weight
    if isinstance(o_proj, nn.Linear):  # [d_model, n*d]
        return w.T.unflatten(0, (n_heads, -1))
    return w.unflatten(0, (n_heads, -1))  # Conv1D: [n*d, d_model]


def _per_head_result(o_proj: nn.Module, z_read: Read) -> Read:
    """Each head's write into the residual stream: z_h @ W_O[h] (bias excluded, as in TransformerLens)."""

    def read(raw):
        z = z_read(raw)  # [batch, pos, head, d_head]
        w = out_proj_weight(o_proj, z.shape[-2]).to(z.dtype)  # [head, d_head, d_model]
        return torch.einsum("bphd,hdm->bphm", z, w)

    return read
