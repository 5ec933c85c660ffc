"""The bundled SmolLM2-135M-Instruct, for real (offline, from the shoestring cache; ~30 s the first time)."""

from __future__ import annotations

import pytest
import torch

import shoestring
from shoestring.hooks.invariants import check_invariants
from shoestring.models import bundled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def smol():
    return shoestring.load()  # offline: HF_HUB_OFFLINE=1 and network refused (conftest)


def test_loads_offline_from_cache(smol):
    final = bundled.cached_dir(progress=False)
    assert final.parent == bundled.home() / "models"
    assert (final / "shoestring.json").exists()
    a = smol.anatomy
    assert a.layout.name == "llama"
    assert (a.n_layers, a.d_model, a.n_heads, a.n_kv_heads, a.d_head, a.d_mlp) == (30, 576, 9, 3, 64, 1536)
    assert smol.dtype == torch.float32 and smol.name == "smollm2-135m"


def test_invariants_on_a_real_sentence(smol):
    ids = smol.tokenize("The quick brown fox jumps over the lazy dog.")["input_ids"]
    report = check_invariants(smol, ids)
    assert report["ok"], report["failed"]


def test_greedy_generation_knows_paris(smol):
    out = smol.generate("The capital of France is", max_new_tokens=8)
    assert len(out) == 1
    assert "Paris" in out[0]


def test_steering_and_capture_on_real_model(smol):
    enc = smol.tokenize("The capital of France is")
    name = "blocks.10.hook_resid_post"
    with torch.no_grad(), smol.capture([name, "blocks.10.attn.hook_pattern"], pos=-1) as acts:
        logits = smol.model(**enc).logits
    assert acts[name].shape == (1, 1, 576)
    assert acts["blocks.10.attn.hook_pattern"].shape[-2:] == (1, enc["input_ids"].shape[1])
    v = acts[name][0, 0]
    with torch.no_grad(), smol.edit({name: -v}):
        ablated = smol.model(**enc).logits
    assert not torch.allclose(logits[0, -1], ablated[0, -1], atol=1e-2)
    assert torch.equal(smol.forward(enc["input_ids"]), logits)  # nothing left behind
