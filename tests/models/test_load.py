"""shoestring.load: every kind of spec, and one clear line for every mistake."""

from __future__ import annotations

import importlib

import pytest
import torch
from tiny_models import make_model, tiny_tokenizer

import shoestring
from shoestring.models.load import resolve_device, resolve_dtype

load_module = importlib.import_module("shoestring.models.load")  # the package re-exports the function `load`


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, shoestring.ShoestringError)
    assert "\n" not in msg and msg.strip() == msg and msg
    assert excinfo.value.exit_code == 2
    assert excinfo.value.fix  # every error says what to do
    return msg


def test_load_model_in_memory():
    model, tok = make_model("llama"), tiny_tokenizer()
    lm = shoestring.load(model, tokenizer=tok, check=False)
    assert lm.model is model and lm.tokenizer is tok
    assert lm.anatomy.layout.name == "llama"
    wrapped = shoestring.LM(model, None, name="x", check=False)
    assert wrapped.name == "x" and wrapped.tokenizer is None


def test_load_model_in_memory_needs_tokenizer():
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load(make_model("llama"))
    assert "tokenizer" in _one_line(err)


def test_load_wrong_type():
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load(42)
    assert "int" in _one_line(err)


def test_load_local_folder_roundtrip(tmp_path):
    model, tok = make_model("gpt2"), tiny_tokenizer()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = shoestring.load(tmp_path, check=False)
    assert lm.anatomy.layout.name == "gpt2"
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(lm.model(input_ids=ids).logits, model(input_ids=ids).logits)
    lm16 = shoestring.load(str(tmp_path), dtype="bf16", check=False)
    assert lm16.dtype == torch.bfloat16


def test_load_folder_without_config(tmp_path):
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load(tmp_path)
    assert "config.json" in _one_line(err)


def test_load_folder_that_does_not_fit(tmp_path, monkeypatch):
    model = make_model("gpt2")
    model.save_pretrained(tmp_path)
    monkeypatch.setattr(load_module, "free_memory", lambda device: 1000)
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load(tmp_path, check=False)
    msg = _one_line(err)
    assert "out of memory" in msg and "bfloat16" in msg


def test_param_count_from_safetensors(tmp_path):
    model = make_model("llama")
    model.save_pretrained(tmp_path)
    count = load_module._param_count_from_safetensors(tmp_path)
    # tied embeddings are saved once
    assert count == sum(p.numel() for p in model.state_dict().values()) - (
        model.lm_head.weight.numel() if model.config.tie_word_embeddings else 0)
    assert load_module._param_count_from_safetensors(tmp_path / "nothing") is None


def test_file_that_is_not_gguf(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"not a model")
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load(f)
    msg = _one_line(err)
    assert "not a .gguf" in msg and "folder" in msg


@pytest.mark.parametrize("spec", ["nonsense-model", "smollm2-135", "gpt-2"])
def test_unknown_alias(spec):
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load(spec)
    msg = _one_line(err)
    assert f"unknown model '{spec}'" in msg
    assert "alias" in msg and "org/name" in msg


def test_unknown_alias_suggests_nearest():
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load("smollm2-135")
    assert "did you mean smollm2-135m" in _one_line(err)


def test_hub_id_offline_names_alternatives():
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load("someorg/somemodel")
    msg = _one_line(err)
    assert "someorg/somemodel" in msg
    assert "hub" in msg and "not reachable" in msg
    assert "smollm2-135m" in msg and "local folder" in msg and ".gguf" in msg


def test_hub_reachable_is_false_offline():
    assert load_module._hub_reachable() is False


@pytest.mark.parametrize("dtype", ["float13", "int8", "bf17"])
def test_bad_dtype(dtype):
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load("smollm2-135m", dtype=dtype)
    msg = _one_line(err)
    assert dtype in msg and "bfloat16" in msg


@pytest.mark.parametrize("name, expect", [("bf16", torch.bfloat16), ("FP16", torch.float16), ("float", torch.float32),
                                          (torch.float16, torch.float16), ("auto", "auto")])
def test_dtype_names(name, expect):
    assert resolve_dtype(name) == expect


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu():
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load("smollm2-135m", device="cuda")
    msg = _one_line(err)
    assert "cuda" in msg and "cpu" in msg


def test_unknown_device():
    with pytest.raises(shoestring.ShoestringError) as err:
        shoestring.load("smollm2-135m", device="tpu")
    msg = _one_line(err)
    assert "tpu" in msg and "cpu" in msg and "cuda" in msg


def test_device_names():
    assert resolve_device(None) == "cpu"
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto") in ("cpu", "mps")


def test_errors_are_importable_and_formatted():
    e = shoestring.ShoestringError("broken thing", "do this")
    assert str(e) == "broken thing; do this"
    assert str(shoestring.ShoestringError("only a problem")) == "only a problem"


# -- hook name errors (resolve) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm():
    return shoestring.LM(make_model("llama"), None, name="tiny", check=False)


def test_unknown_hook_name_suggests_nearest(lm):
    with pytest.raises(shoestring.ShoestringError) as err:
        lm.resolve("blocks.0.hook_resid")
    msg = _one_line(err)
    assert "unknown hook point 'blocks.0.hook_resid'" in msg
    assert "did you mean" in msg and "blocks.0.hook_resid_pre" in msg


def test_unknown_glob_is_an_error(lm):
    with pytest.raises(shoestring.ShoestringError) as err:
        lm.capture("blocks.*.hook_nothing")
    assert "unknown hook point" in _one_line(err)


@pytest.mark.parametrize("name", ["blocks.2.hook_resid_post", "blocks.-1.hook_resid_post", "blocks.99.attn.hook_q"])
def test_layer_out_of_range(lm, name):
    with pytest.raises(shoestring.ShoestringError) as err:
        lm.edit({name: 1.0})
    msg = _one_line(err)
    assert "out of range" in msg and "0 to 1" in msg and "2 layers" in msg


def test_resolve_order_and_dedup(lm):
    specs = lm.resolve(["blocks.1.hook_resid_post", "blocks.*.hook_resid_post"])
    assert [s.name for s in specs] == ["blocks.1.hook_resid_post", "blocks.0.hook_resid_post"]
    assert [s.name for s in lm.resolve("hook_embed")] == ["hook_embed"]
