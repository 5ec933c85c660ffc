"""Pruned checkpoints with per-layer widths: saved with save_pretrained plus the widths in config.json, and
reloaded through ``shoestring.load`` (and :func:`load_pruned`) with logits identical to the in-memory model."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as T

import shoestring
from shoestring.prune import CRITERIA, PruningPlan, apply_plan, model_shape, n_params, plan_from_scores
from shoestring.prune.checkpoint import PLAN_FILE, is_pruned_folder, load_pruned, save_pruned
from tiny_models import make_model, random_ids
from cli_helpers import tiny_smol_dir


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma"])
def test_per_layer_widths_reload_with_identical_logits(family, tmp_path):
    model = make_model(family).eval()
    scores = CRITERIA["magnitude"]().score(model, None)
    plan = plan_from_scores(model, scores, head_ratio=0.5, channel_ratio=0.4, uniform=False)
    plan.channels[0] = plan.channels[0][:3]  # make sure the widths differ between layers
    assert not plan.is_uniform()
    pruned = apply_plan(model, plan)
    how = save_pruned(pruned, None, plan, tmp_path / "p")
    assert "shoestring.load" in how["loads_with"] and is_pruned_folder(tmp_path / "p")
    assert PruningPlan.load(tmp_path / "p" / PLAN_FILE).channels[0] == plan.channels[0]
    again = load_pruned(tmp_path / "p")
    ids = random_ids(2, 9)
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, pruned(input_ids=ids).logits)
    assert n_params(again) == n_params(pruned)
    assert again.generate(ids, max_new_tokens=3, do_sample=False).shape == (2, 12)


def test_dropped_layers_and_per_layer_widths_through_shoestring_load(tmp_path):
    folder = tiny_smol_dir(tmp_path / "tiny")
    lm = shoestring.load(str(folder))
    shape = model_shape(lm.model.config)
    plan = PruningPlan(shape, kv_groups={0: [1], 2: [0, 1]}, channels={0: list(range(10)), 2: list(range(40))},
                       drop_layers=[1])
    pruned = apply_plan(lm.model, plan)
    assert pruned.config.num_hidden_layers == 2
    save_pruned(pruned, lm.tokenizer, plan, tmp_path / "p")
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg["shoestring_pruning"] == {"kv_groups": [1, 2], "channels": [10, 40]}
    again = shoestring.load(str(tmp_path / "p"))
    ids = random_ids(1, 7)
    with torch.no_grad():
        assert torch.equal(again.model(input_ids=ids).logits, pruned(input_ids=ids).logits)
    with pytest.raises(Exception):  # plain transformers cannot express per-layer widths (documented)
        T.AutoModelForCausalLM.from_pretrained(tmp_path / "p")


def test_uniform_folder_is_a_plain_checkpoint(tmp_path):
    model = make_model("llama").eval()
    plan = plan_from_scores(model, CRITERIA["magnitude"]().score(model, None), head_ratio=0.5)
    pruned = apply_plan(model, plan)
    how = save_pruned(pruned, None, plan, tmp_path / "u")
    assert how["loads_with"].startswith("transformers") and not is_pruned_folder(tmp_path / "u")
    again = T.AutoModelForCausalLM.from_pretrained(tmp_path / "u").eval()
    ids = random_ids(2, 5)
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, pruned(input_ids=ids).logits)
