"""dtype, device_map and the GGUF path of shoestring.load."""

from __future__ import annotations

import pytest
import torch
import transformers as T
from transformers import AutoModelForCausalLM

import shoestring


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    torch.manual_seed(0)
    cfg = T.LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=64, bos_token_id=0, eos_token_id=1)
    folder = tmp_path_factory.mktemp("tiny-llama")
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    return folder


def _no_tokenizer(monkeypatch):
    # The tiny folder has no tokenizer; what is tested here is the model side of loading.
    monkeypatch.setattr(T.AutoTokenizer, "from_pretrained", classmethod(lambda cls, *a, **k: None))


@pytest.mark.parametrize("dtype, expect", [("bfloat16", torch.bfloat16), ("fp16", torch.float16), ("float32", torch.float32)])
def test_dtype_is_applied(tiny_folder, monkeypatch, dtype, expect):
    _no_tokenizer(monkeypatch)
    lm = shoestring.load(str(tiny_folder), dtype=dtype, check=False)
    assert lm.dtype == expect
    assert all(p.dtype == expect for p in lm.model.parameters())


def test_device_map_auto_loads_and_hooks_work(tiny_folder, monkeypatch):
    _no_tokenizer(monkeypatch)
    lm = shoestring.load(str(tiny_folder), device_map="auto", check=True)
    assert lm.device.type == "cpu"  # accelerate placed every layer on the only device
    ids = torch.tensor([[2, 3, 4, 5]])
    with lm.capture(["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]) as acts:
        out = lm.model(input_ids=ids, output_hidden_states=True)
    assert torch.allclose(acts["blocks.0.hook_resid_post"], out.hidden_states[1])
    with torch.no_grad():
        assert torch.allclose(lm.unembed(acts["blocks.1.hook_resid_post"]), out.logits, atol=1e-5)


def test_bfloat16_invariants_hold_at_bf16_tolerance(tiny_folder, monkeypatch):
    from shoestring.hooks.invariants import check_invariants

    _no_tokenizer(monkeypatch)
    lm = shoestring.load(str(tiny_folder), dtype="bfloat16", check=False)
    report = check_invariants(lm, torch.randint(0, 100, (2, 6)))
    assert report["ok"], report["failed"]
    assert report["tol"] > 1e-3  # the looser bf16 tolerance was chosen


@pytest.mark.slow
def test_gguf_file_path_loads_like_the_bundled_alias():
    from shoestring.models.bundled import gguf_path

    lm_gguf = shoestring.load(str(gguf_path()), check=False)
    lm = shoestring.load(check=False)
    ids = lm.tokenize("The capital of France is")["input_ids"]
    assert torch.equal(ids, lm_gguf.tokenize("The capital of France is")["input_ids"])
    assert torch.allclose(lm.forward(ids), lm_gguf.forward(ids), atol=1e-4)
