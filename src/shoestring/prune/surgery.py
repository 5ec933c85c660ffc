"""Surgery: slice the weights a plan removes, so the model is really smaller and faster.

Supported: the ``llama`` layout (Llama, SmolLM2, Mistral, Qwen2/3, Gemma, ...: separate q/k/v projections and
a gated MLP). A key-value group ``g`` is key and value rows ``g*d .. (g+1)*d`` and the query heads
``g*r .. (g+1)*r - 1`` (``r`` = query heads per key-value head) with their output-projection columns; an MLP
channel is one row of gate and up and one column of down. Dropped layers leave the layer list, and the
remaining attention modules are renumbered for the KV cache.

When the plan is uniform (see :meth:`~shoestring.prune.plan.PruningPlan.is_uniform`) the config is updated
(``num_attention_heads``, ``num_key_value_heads``, ``head_dim``, ``intermediate_size``,
``num_hidden_layers``), so ``save_pretrained`` writes a checkpoint plain ``AutoModelForCausalLM`` loads.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ShoestringError
from ..models.anatomy import detect
from .plan import PruningPlan


def _keep_rows(linear: nn.Linear, rows: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.data[rows].clone())
    if linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.data[rows].clone())
    linear.out_features = len(rows)


def _keep_cols(linear: nn.Linear, cols: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.data[:, cols].clone())
    linear.in_features = len(cols)


def group_rows(groups, head_dim: int, per_group: int = 1) -> torch.Tensor:
    """Row indices of the heads of ``groups`` (``per_group`` heads per group, ``head_dim`` rows per head)."""
    heads = [g * per_group + j for g in groups for j in range(per_group)]
    return torch.tensor([h * head_dim + i for h in heads for i in range(head_dim)], dtype=torch.long)


@torch.no_grad()
def apply_plan(model: nn.Module, plan: PruningPlan) -> nn.Module:
    """Prune ``model`` in place by ``plan`` and return it."""
    config = model.config
    plan.check(config)
    anatomy = detect(model)
    if anatomy.layout.name != "llama":
        raise ShoestringError(f"pruning surgery supports the llama layout, not '{anatomy.layout.name}'",
                              "prune a Llama-family model (SmolLM2, Mistral, Qwen2, Gemma, ...)")
    shape = plan.model
    d, G = shape["head_dim"], shape["num_key_value_heads"]
    r = shape["num_attention_heads"] // G
    for i, block in enumerate(anatomy.blocks):
        attn, mlp = block.self_attn, block.mlp
        if i in plan.kv_groups:
            keep = sorted(plan.kv_groups[i])
            _keep_rows(attn.q_proj, group_rows(keep, d, r))
            _keep_rows(attn.k_proj, group_rows(keep, d))
            _keep_rows(attn.v_proj, group_rows(keep, d))
            _keep_cols(attn.o_proj, group_rows(keep, d, r))
        if i in plan.channels:
            keep = torch.tensor(sorted(plan.channels[i]), dtype=torch.long)
            _keep_rows(mlp.gate_proj, keep)
            _keep_rows(mlp.up_proj, keep)
            _keep_cols(mlp.down_proj, keep)
    if plan.drop_layers:
        for i in sorted(set(plan.drop_layers), reverse=True):
            del anatomy.blocks[i]
        for j, b in enumerate(anatomy.blocks):
            b.self_attn.layer_idx = j
        types = getattr(config, "layer_types", None)
        if types:
            config.layer_types = [t for i, t in enumerate(types) if i not in set(plan.drop_layers)]
        config.num_hidden_layers = len(anatomy.blocks)
    if plan.is_uniform():
        first = next(i for i in range(shape["num_hidden_layers"]) if i not in plan.drop_layers)
        g = len(plan.kv_groups.get(first, range(G)))
        config.num_key_value_heads = g
        config.num_attention_heads = g * r
        config.head_dim = d
        config.intermediate_size = len(plan.channels.get(first, range(shape["intermediate_size"])))
    else:  # per-layer widths, after dropped layers: what shoestring.load needs to rebuild the shapes
        kept = [i for i in range(shape["num_hidden_layers"]) if i not in plan.drop_layers]
        config.shoestring_pruning = {"kv_groups": [len(plan.kv_groups.get(i, range(G))) for i in kept],
                                     "channels": [len(plan.channels.get(i, range(shape["intermediate_size"])))
                                                  for i in kept]}
    return model


def n_params(model: nn.Module) -> int:
    """Parameters, each shared tensor counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
