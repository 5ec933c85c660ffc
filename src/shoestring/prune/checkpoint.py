"""Saving and reloading pruned models.

A uniform plan (every layer keeps the same number of key-value groups and of MLP channels) is expressed by the
family's own config, so the folder is a standard checkpoint that plain ``AutoModelForCausalLM.from_pretrained``
loads. A plan with per-layer widths cannot be: the folder is still ``save_pretrained``'s (safetensors +
config.json + tokenizer), and config.json carries ``shoestring_pruning``, the widths of every layer, which
:func:`load_pruned` (and so ``shoestring.load(folder)``) uses to rebuild the shapes before reading the weights.
Both folders hold the plan that made them (``pruning_plan.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ShoestringError
from .plan import PruningPlan, model_shape
from .surgery import apply_plan

PLAN_FILE = "pruning_plan.json"


def save_pruned(model, tokenizer, plan: PruningPlan, folder) -> dict:
    """Write the pruned ``model`` (and tokenizer, and ``plan``) to ``folder``; returns how it loads."""
    folder = Path(folder)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    plan.save(folder / PLAN_FILE)
    if plan.is_uniform():
        return {"folder": str(folder), "loads_with": "transformers.AutoModelForCausalLM.from_pretrained"}
    return {"folder": str(folder), "loads_with": "shoestring.load (per-layer widths: a plain config cannot express them)"}


def is_pruned_folder(folder) -> bool:
    """``folder``'s config.json names per-layer widths (written by :func:`save_pruned` for a non-uniform plan)."""
    cfg = Path(folder) / "config.json"
    try:
        return "shoestring_pruning" in json.loads(cfg.read_text())
    except (OSError, ValueError):
        return False


def load_pruned(folder, dtype=torch.float32, trust_remote_code: bool = False):
    """Rebuild a model with per-layer widths from ``folder`` and load its weights (strictly: every tensor
    must match the rebuilt shape)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    widths = config.shoestring_pruning
    del config.shoestring_pruning
    groups, channels = widths["kv_groups"], widths["channels"]
    if len(groups) != config.num_hidden_layers or len(channels) != config.num_hidden_layers:
        raise ShoestringError(f"{folder}/config.json names widths for {len(groups)} layers but the model has "
                              f"{config.num_hidden_layers}", "re-save the model with shoestring's save_pruned")
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    shape = model_shape(config)
    plan = PruningPlan(model=shape, kv_groups={i: list(range(g)) for i, g in enumerate(groups)},
                       channels={i: list(range(c)) for i, c in enumerate(channels)})
    apply_plan(model, plan)  # the shapes only: the weights are replaced below
    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(f))
    if not state:
        raise ShoestringError(f"{folder} has no .safetensors weights", "point at a folder written by save_pruned")
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if getattr(config, "tie_word_embeddings", False) and k.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        raise ShoestringError(f"{folder}'s weights do not match the pruned shapes (missing {sorted(set(missing) - tied)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]})", "re-save the model with shoestring's save_pruned")
    if tied:
        model.tie_weights()
    return model.to(dtype).eval()
