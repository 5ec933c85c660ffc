"""Anatomy detection and the hook point catalogue, for every family."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn as nn
from tiny_models import FAMILIES, HEADS, HIDDEN, KV_HEADS, LAYERS, VOCAB, make_lm, make_model

import shoestring
from shoestring.models.anatomy import LAYOUTS, Layout, detect, register

# family -> (n_kv_heads, d_head, d_mlp)
SHAPES = {
    "gpt2": (HEADS, 8, 4 * HIDDEN),
    "gpt_neox_parallel": (HEADS, 8, 64),
    "gpt_neox_sequential": (HEADS, 8, 64),
    "gptj": (HEADS, 8, 4 * HIDDEN),
    "opt": (HEADS, 8, 64),
    "llama": (KV_HEADS, 8, 64),
    "mistral": (KV_HEADS, 8, 64),
    "mixtral": (KV_HEADS, 8, 64),
    "qwen2": (KV_HEADS, 8, 64),
    "qwen3": (KV_HEADS, 8, 64),
    "gemma": (KV_HEADS, 8, 64),
    "gemma2": (KV_HEADS, 8, 64),
    "gemma3_text": (KV_HEADS, 8, 64),
    "phi3": (KV_HEADS, 8, 64),
    "olmo2": (KV_HEADS, 8, 64),
    "phi": (KV_HEADS, 8, 64),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_detect_family(family):
    model = make_model(family, "eager")
    anat = detect(model)
    _, layout, parallel = FAMILIES[family]
    assert anat.layout.name == layout
    assert anat.parallel is parallel
    assert (anat.n_layers, anat.d_model, anat.n_heads, anat.d_vocab) == (LAYERS, HIDDEN, HEADS, VOCAB)
    assert (anat.n_kv_heads, anat.d_head, anat.d_mlp) == SHAPES[family]
    assert anat.unembed is model.get_output_embeddings()
    assert anat.embed is model.get_input_embeddings()
    assert anat.final_norm is not None
    assert anat.summary()["block"] == ("parallel" if parallel else "sequential")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_hook_point_catalogue(family):
    lm = make_lm(family, "eager")
    names = list(lm.hook_points)
    anat = lm.anatomy
    assert names[0] == "hook_embed"
    assert names[-2:] == ["ln_final.hook_normalized", "hook_logits"]
    assert ("hook_pos_embed" in names) == (family in ("gpt2", "opt"))
    for L in range(anat.n_layers):
        b = f"blocks.{L}"
        for leaf in ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern",
                     "attn.hook_z", "attn.hook_result", "hook_attn_out", "hook_mlp_out", "hook_resid_post"):
            assert f"{b}.{leaf}" in names
        assert (f"{b}.hook_resid_mid" in names) == (not anat.parallel)
        assert (f"{b}.mlp.hook_post" in names) == (family != "mixtral")
        assert (f"{b}.attn.hook_rot_q" in names) == (family != "gptj")
        assert (f"{b}.ln1.hook_normalized" in names) == (family != "olmo2")
        assert (f"{b}.ln2.hook_normalized" in names) == (family not in ("olmo2", "gptj", "phi"))
    # per block, resid_pre comes first and resid_post last
    for L in range(anat.n_layers):
        block = [n for n in names if n.startswith(f"blocks.{L}.")]
        assert block[0].endswith("hook_resid_pre") and block[-1].endswith("hook_resid_post")


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "gpt_neox_parallel", "mixtral", "gemma2"])
def test_point_shapes(family):
    lm = make_lm(family, "eager")
    shapes = lm.point_shapes(batch=2, pos=5)
    a = lm.anatomy
    assert shapes["hook_embed"] == [2, 5, a.d_model]
    assert shapes["blocks.0.attn.hook_q"] == [2, 5, a.n_heads, a.d_head]
    assert shapes["blocks.0.attn.hook_k"] == [2, 5, a.n_kv_heads, a.d_head]
    assert shapes["blocks.1.attn.hook_v"] == [2, 5, a.n_kv_heads, a.d_head]
    assert shapes["blocks.0.attn.hook_pattern"] == [2, a.n_heads, 5, 5]
    assert shapes["blocks.0.attn.hook_z"] == [2, 5, a.n_heads, a.d_head]
    assert shapes["blocks.0.attn.hook_result"] == [2, 5, a.n_heads, a.d_model]
    assert shapes["blocks.1.hook_mlp_out"] == [2, 5, a.d_model]
    assert shapes["hook_logits"] == [2, 5, a.d_vocab]
    if "blocks.0.mlp.hook_post" in shapes:
        assert shapes["blocks.0.mlp.hook_post"] == [2, 5, a.d_mlp]
    if "blocks.0.hook_resid_mid" in shapes:
        assert shapes["blocks.0.hook_resid_mid"] == [2, 5, a.d_model]
    assert set(shapes) == set(lm.hook_points)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox_parallel", "gptj", "opt", "olmo2", "gemma2"])
def test_hook_points_are_in_forward_order(family):
    """Editable points fire in the order hook_points lists them."""
    lm = make_lm(family, "eager")
    fired = []
    editable = [n for n, s in lm.hook_points.items() if s.write is not None]

    def recorder(name):
        def fn(act):
            fired.append(name)
        return fn

    with torch.no_grad(), lm.edit({n: recorder(n) for n in editable}):
        lm.model(input_ids=torch.tensor([[3, 4, 5]]))
    assert sorted(fired) == sorted(editable)
    assert fired == editable


def test_info_and_repr():
    lm = make_lm("llama")
    info = lm.info()
    assert info["layout"] == "llama" and info["n_layers"] == LAYERS
    assert info["parameters"] == sum(p.numel() for p in lm.model.parameters())
    assert info["weight_bytes"] == 4 * info["parameters"]
    assert info["hook_points"] == len(lm.hook_points)
    assert info["attn_implementation"] == "sdpa"
    assert "llama layout" in repr(lm) and "2 layers" in repr(lm)


def test_duplicate_layout_registration_raises():
    with pytest.raises(ValueError, match="twice"):
        register(LAYOUTS["llama"])


# -- unknown models ---------------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mixer = nn.Linear(8, 8)
        self.fancy_norm = nn.LayerNorm(8)


class _Weird(nn.Module):
    def __init__(self, config, blocks=True):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(10, 8)
        if blocks:
            self.layers = nn.ModuleList([_Block() for _ in range(3)])
        self.head = nn.Linear(8, 10)

    def get_input_embeddings(self):
        return self.emb

    def get_output_embeddings(self):
        return self.head


def _one_line(err):
    msg = str(err.value)
    assert "\n" not in msg
    assert err.value.exit_code == 2
    return msg


def test_unknown_layout_names_what_was_not_found():
    model = _Weird(types.SimpleNamespace(num_hidden_layers=3, hidden_size=8, num_attention_heads=2))
    with pytest.raises(shoestring.ShoestringError) as err:
        detect(model)
    msg = _one_line(err)
    assert "no known layout matches block _Block" in msg
    assert "mixer:Linear" in msg and "fancy_norm:LayerNorm" in msg
    assert "known layouts:" in msg and "llama" in msg
    with pytest.raises(shoestring.ShoestringError):
        shoestring.LM(model, None, check=False)


def test_no_block_list():
    model = _Weird(types.SimpleNamespace(num_hidden_layers=3), blocks=False)
    with pytest.raises(shoestring.ShoestringError) as err:
        detect(model)
    assert "no list of 3 identical decoder blocks" in _one_line(err)


def test_no_num_hidden_layers():
    model = _Weird(types.SimpleNamespace(hidden_size=8))
    with pytest.raises(shoestring.ShoestringError) as err:
        detect(model)
    assert "num_hidden_layers" in _one_line(err)


def test_layout_matches_by_structure_not_class_name():
    """A renamed copy of a llama block is still recognised as llama."""
    model = make_model("llama")
    renamed = type("TotallyNewDecoderLayer", (type(model.model.layers[0]),), {})
    for blk in model.model.layers:
        blk.__class__ = renamed
    assert detect(model).layout.name == "llama"


def test_layout_requires_exact_norm_set():
    lay = LAYOUTS["llama"]
    blk = make_model("llama").model.layers[0]
    assert lay.matches(blk)
    blk.extra_norm = nn.LayerNorm(HIDDEN)
    assert not lay.matches(blk)
    assert isinstance(lay, Layout)
