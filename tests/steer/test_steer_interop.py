"""Interop: lm-eval steer files and llama.cpp / repeng control vectors put each vector on the right layer.

The layer mapping is proved by applying the exported vectors the way each tool does (a forward hook on the
output of ``model.model.layers[i]``) and comparing logits with :class:`Steer`.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import gguf
import numpy as np
import pytest
import torch

from steer_helpers import smol_lm  # noqa: F401

from shoestring.errors import ShoestringError
from shoestring.steer import Direction, Steer, export_gguf, export_lm_eval, import_gguf, import_repeng
from shoestring.steer.interop import blocks_path, output_vectors

TEXT = ["The food was cold and the service slow"]


def random_direction(layers=(1, 2), d=32, hook="blocks.{layer}.hook_resid_post", seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return Direction({layer: torch.randn(d, generator=g) for layer in layers}, "mean_diff", hook, **kw)


def hooked_logits(lm, edits: dict[int, object]):
    """Logits with ``edits[i](output)`` applied to the output of ``model.model.layers[i]`` (plain torch hooks)."""
    def make(fn):
        def hook(module, args, output):
            if isinstance(output, tuple):
                return (fn(output[0]), *output[1:])
            return fn(output)
        return hook

    handles = [lm.model.model.layers[i].register_forward_hook(make(fn)) for i, fn in edits.items()]
    try:
        return lm.forward(TEXT)
    finally:
        for h in handles:
            h.remove()


def steered_logits(lm, direction, **kw):
    with Steer(lm, direction, **kw):
        return lm.forward(TEXT)


# -- llama.cpp / repeng GGUF --------------------------------------------------------------------------------
def test_gguf_round_trip_restores_the_direction(tmp_path):
    d = random_direction(model="smollm2-135m", meta={"n_positive": 3})
    path = export_gguf(d, tmp_path / "v.gguf")
    back = import_repeng(path)
    assert back.layers == d.layers and back.hook == d.hook and back.method == d.method
    assert back.model == d.model and back.meta == d.meta
    assert all(torch.equal(back.vectors[k], d.vectors[k]) for k in d.layers)
    assert import_gguf is import_repeng
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically


def test_gguf_holds_what_llama_cpp_loads(tmp_path):
    d = random_direction(layers=(1, 2))
    path = export_gguf(d, tmp_path / "v.gguf", scale=3.0, model_hint="mistral")
    r = gguf.GGUFReader(str(path))

    def string(key):
        f = r.get_field(key)
        return bytes(f.parts[f.data[0]]).decode()

    assert string("general.architecture") == "controlvector" and string("controlvector.model_hint") == "mistral"
    f = r.get_field("controlvector.layer_count")
    assert int(f.parts[f.data[0]][0]) == 2
    tensors = {t.name: t for t in r.tensors}
    assert set(tensors) == {"direction.1", "direction.2"}  # llama.cpp: N >= 1, N = the 0-based block
    for layer in (1, 2):
        t = tensors[f"direction.{layer}"]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and len(t.shape) == 1
        assert np.allclose(t.data, 3.0 * d.vectors[layer].numpy())  # the scale is baked in
    assert import_repeng(path).meta["exported_scale"] == 3.0


def _gguf_bytes(arch: str, strings: dict, u32: dict, tensors: dict[str, np.ndarray]) -> bytes:
    """A GGUF v3 file by hand (the spec in ggml's docs/gguf.md), independent of the gguf package."""
    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    kv = [(k, 8, s(v)) for k, v in {"general.architecture": arch, **strings}.items()]
    kv += [(k, 4, struct.pack("<I", v)) for k, v in u32.items()]
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    out += b"".join(s(k) + struct.pack("<I", t) + v for k, t, v in kv)
    offset, blobs = 0, []
    for name, arr in tensors.items():
        out += s(name) + struct.pack("<I", 1) + struct.pack("<Q", arr.size) + struct.pack("<IQ", 0, offset)
        blob = arr.astype("<f4").tobytes()
        blob += b"\0" * (-len(blob) % 32)
        blobs.append(blob)
        offset += len(blob)
    out += b"\0" * (-len(out) % 32)
    return out + b"".join(blobs)


def test_a_repeng_style_file_imports_on_the_right_layers(tmp_path, smol_lm):
    # repeng's default layers: range(-1, -n_layers, -1) normalised to n-1 .. 1, written as direction.{i}
    rng = np.random.default_rng(0)
    dirs = {i: rng.standard_normal(32).astype(np.float32) for i in (2, 1)}
    path = tmp_path / "repeng.gguf"
    path.write_bytes(_gguf_bytes("controlvector", {"controlvector.model_hint": "llama"},
                                 {"controlvector.layer_count": 2}, {f"direction.{i}": v for i, v in dirs.items()}))
    d = import_repeng(path, model="tiny")
    assert d.layers == [1, 2] and d.hook == "blocks.{layer}.hook_resid_post" and d.model == "tiny"
    assert d.meta == {"imported_from": "gguf", "model_hint": "llama"}
    assert all(np.array_equal(d.vectors[i].numpy(), dirs[i]) for i in dirs)
    # repeng's ControlModule adds coeff * directions[i] to the output of model.model.layers[i]
    want = hooked_logits(smol_lm, {i: (lambda x, v=torch.tensor(v): x + 5.0 * v) for i, v in dirs.items()})
    got = steered_logits(smol_lm, d, scale=5.0)
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, smol_lm.forward(TEXT), atol=1e-3)


def test_a_repeng_control_vector_object_imports(smol_lm):
    rng = np.random.default_rng(1)
    cv = SimpleNamespace(model_type="llama", directions={1: rng.standard_normal(32).astype(np.float32)})
    d = import_repeng(cv)
    assert d.layers == [1] and d.meta == {"imported_from": "repeng", "model_hint": "llama"}
    want = hooked_logits(smol_lm, {1: lambda x: x - 2.0 * torch.tensor(cv.directions[1])})
    assert torch.allclose(steered_logits(smol_lm, d, scale=-2.0), want, atol=1e-5)
    neg = SimpleNamespace(model_type="llama", directions={-1: cv.directions[1]})
    assert import_repeng(neg, n_layers=3).layers == [2]
    with pytest.raises(ShoestringError, match="n_layers"):
        import_repeng(neg)
    with pytest.raises(ShoestringError, match="cannot import a int"):
        import_repeng(3)


def test_resid_pre_exports_as_the_previous_blocks_output(tmp_path, smol_lm):
    pre = random_direction(layers=(2,), hook="blocks.{layer}.hook_resid_pre")
    assert list(output_vectors(pre)) == [1]
    post = import_repeng(export_gguf(pre, tmp_path / "pre.gguf"))
    assert post.layers == [1]
    assert torch.allclose(steered_logits(smol_lm, post, scale=4.0), steered_logits(smol_lm, pre, scale=4.0), atol=1e-5)


def test_refusals(tmp_path):
    with pytest.raises(ShoestringError, match="block 0"):
        export_gguf(random_direction(layers=(0, 1)), tmp_path / "v.gguf")
    export_gguf(random_direction(layers=(0, 1)), tmp_path / "v.gguf", layers=[1])  # the fix works
    with pytest.raises(ShoestringError, match="embedding output"):
        output_vectors(random_direction(layers=(0,), hook="blocks.{layer}.hook_resid_pre"))
    with pytest.raises(ShoestringError, match="sequence"):
        output_vectors(Direction({1: torch.randn(3, 32)}, "actadd"))
    with pytest.raises(ShoestringError, match="cannot be exported"):
        output_vectors(random_direction(hook="blocks.{layer}.hook_attn_out"))
    with pytest.raises(ShoestringError, match="no vector for layer"):
        output_vectors(random_direction(), layers=[5])
    with pytest.raises(ShoestringError, match=".pt or .pth"):
        export_lm_eval(random_direction(), tmp_path / "v.csv")
    with pytest.raises(ShoestringError, match="unknown lm-eval action"):
        export_lm_eval(random_direction(), tmp_path / "v.pt", action="ablate")
    with pytest.raises(ShoestringError, match="no file"):
        import_repeng(tmp_path / "missing.gguf")
    (tmp_path / "junk.gguf").write_text("not a gguf")
    with pytest.raises(ShoestringError, match="not a GGUF"):
        import_repeng(tmp_path / "junk.gguf")
    (tmp_path / "model.gguf").write_bytes(_gguf_bytes("llama", {}, {}, {"token_embd.weight": np.zeros(4)}))
    with pytest.raises(ShoestringError, match="not a control vector"):
        import_repeng(tmp_path / "model.gguf")


# -- lm-evaluation-harness ------------------------------------------------------------------------------------
def lm_eval_logits(lm, config: dict):
    """Apply a steer file as lm-eval's SteeredModel does: hooks on ``model.base_model`` modules by name."""
    def add(x, info):
        return x + info["steering_coefficient"] * info["steering_vector"]

    def clamp(x, info):
        u = info["steering_vector"] / info["steering_vector"].norm()
        return x + u * (info["steering_coefficient"] - (x * u).sum(-1, keepdim=True))

    def make(info):
        fn = add if info["action"] == "add" else clamp

        def hook(module, args, output):
            return (fn(output[0], info), *output[1:]) if isinstance(output, tuple) else fn(output, info)
        return hook

    handles = [m.register_forward_hook(make(config[name])) for name, m in lm.model.base_model.named_modules()
               if name in config]
    assert len(handles) == len(config)  # every hookpoint resolves, as lm-eval demands
    try:
        return lm.forward(TEXT)
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("action,mode", [("add", "add"), ("clamp", "ablate_add")])
def test_lm_eval_file_steers_like_steer(tmp_path, smol_lm, action, mode):
    d = random_direction(layers=(1, 2), model=str(tmp_path / "model"))
    path = tmp_path / "steer.pt"
    command = export_lm_eval(d, path, scale=3.0, action=action, lm=smol_lm)
    assert command.startswith("lm_eval --model steered --model_args pretrained=")
    assert f"steer_path={path.resolve()}" in command
    config = torch.load(path, weights_only=True)  # what lm-eval calls
    assert set(config) == {"layers.1", "layers.2"} and blocks_path(smol_lm) == "layers"
    for layer in (1, 2):
        info = config[f"layers.{layer}"]
        assert torch.equal(info["steering_vector"], d.vectors[layer]) and info["steering_coefficient"] == 3.0
        assert info["action"] == action and info["bias"] is None and info["head_index"] is None
    want = steered_logits(smol_lm, d, scale=3.0, mode=mode)
    assert torch.allclose(lm_eval_logits(smol_lm, config), want, atol=1e-4)
    assert not torch.allclose(want, smol_lm.forward(TEXT), atol=1e-3)


def test_lm_eval_command_names_the_hub_model(tmp_path):
    command = export_lm_eval(random_direction(model="smollm2-135m"), tmp_path / "s.pt")
    assert "pretrained=HuggingFaceTB/SmolLM2-135M-Instruct," in command
    pre = random_direction(layers=(2,), hook="blocks.{layer}.hook_resid_pre")
    export_lm_eval(pre, tmp_path / "pre.pt", blocks="h")
    assert set(torch.load(tmp_path / "pre.pt", weights_only=True)) == {"h.1"}
