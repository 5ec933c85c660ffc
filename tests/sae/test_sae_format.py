"""Checkpoints: SAELens-format round trips for every architecture, SAELens 5 and Gemma Scope files, and
one-line errors for broken checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from shoestring.errors import ShoestringError
from shoestring.sae import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE, load_sae, make_sae, save_sae

from sae_helpers import randomise, one_thread  # noqa: F401 (one_thread: an autouse fixture)

D_IN, D_SAE, K = 16, 40, 4
HOOK = "blocks.1.hook_resid_post"
CLASSES = {"standard": ReLUSAE, "topk": TopKSAE, "batchtopk": BatchTopKSAE, "jumprelu": JumpReLUSAE}


def _sae(arch, **kw):
    return randomise(make_sae(arch, D_IN, D_SAE, k=K if "topk" in arch else None, hook_name=HOOK,
                              model_name="tiny", **kw), bias=0.3).eval()


@pytest.mark.parametrize("arch", ["standard", "topk", "batchtopk", "jumprelu"])
def test_round_trip_every_architecture(arch, tmp_path):
    sae = _sae(arch, l1_coefficient=3.0)
    sae.cfg.scaling_factor = 0.5  # saving folds it: the files describe an SAE on raw activations
    x = 3 * torch.randn(50, D_IN)
    expect_z, expect = sae.encode(x), sae(x)
    assert (expect_z > 0).any() and (expect_z == 0).any()
    folder = save_sae(sae, tmp_path / "sae")
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    loaded = load_sae(folder)
    assert type(loaded) is CLASSES[arch]
    assert not loaded.training
    assert loaded.cfg.hook_name == HOOK and loaded.cfg.model_name == "tiny" and loaded.cfg.k == sae.cfg.k
    assert loaded.cfg.scaling_factor == 1.0
    assert loaded.cfg.extra.get("l1_coefficient") == 3.0
    assert torch.allclose(loaded.encode(x), expect_z, rtol=1e-5, atol=1e-5)
    assert torch.allclose(loaded(x), expect, rtol=1e-5, atol=1e-5)
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    thresholds = {"threshold"} if arch in ("jumprelu", "batchtopk") else set()
    assert set(tensors) == {"W_enc", "W_dec", "b_enc", "b_dec"} | thresholds
    assert tensors["W_enc"].shape == (D_IN, D_SAE) and tensors["W_dec"].shape == (D_SAE, D_IN)


def test_saving_replaces_an_existing_checkpoint(tmp_path):
    a, b = _sae("topk"), _sae("standard")
    save_sae(a, tmp_path / "s")
    save_sae(b, tmp_path / "s")
    assert type(load_sae(tmp_path / "s")) is ReLUSAE
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary or old folder left


@pytest.mark.parametrize("arch", ["topk", "standard", "batchtopk", "jumprelu"])
def test_cfg_json_has_saelens_keys(arch, tmp_path):
    folder = save_sae(_sae(arch), tmp_path / "s")
    cfg = json.loads((folder / "cfg.json").read_text())
    for key in ("d_in", "d_sae", "architecture", "apply_b_dec_to_input", "normalize_activations", "dtype", "metadata"):
        assert key in cfg, key
    assert cfg["d_in"] == D_IN and cfg["d_sae"] == D_SAE and cfg["dtype"] == "float32"
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["hook_name"] == HOOK and cfg["metadata"]["model_name"] == "tiny"
    # SAELens has no BatchTopK at inference: it is saved as the JumpReLU it becomes
    assert cfg["architecture"] == {"batchtopk": "jumprelu"}.get(arch, arch)
    assert ("k" in cfg) == (arch == "topk")
    if arch == "topk":
        assert cfg["k"] == K


def test_batchtopk_reads_as_jumprelu_without_our_section(tmp_path):
    sae = _sae("batchtopk")
    x = torch.randn(30, D_IN)
    expect = sae(x)
    folder = save_sae(sae, tmp_path / "s")
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["shoestring"]  # what another SAELens reader sees
    (folder / "cfg.json").write_text(json.dumps(cfg))
    loaded = load_sae(folder)
    assert type(loaded) is JumpReLUSAE
    assert torch.allclose(loaded(x), expect, rtol=1e-5, atol=1e-5)


def test_transcoder_round_trip(tmp_path):
    sae = make_sae("topk", D_IN, D_SAE, k=K, hook_name="blocks.0.ln2.hook_normalized",
                   hook_name_out="blocks.0.hook_mlp_out", d_out=24)
    sae = randomise(sae, bias=0.3).eval()
    assert sae.cfg.is_transcoder and not sae.cfg.apply_b_dec_to_input
    x = torch.randn(20, D_IN)
    expect = sae(x)
    assert expect.shape == (20, 24)
    folder = save_sae(sae, tmp_path / "tc")
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["d_out"] == 24 and cfg["metadata"]["hook_name_out"] == "blocks.0.hook_mlp_out"
    assert cfg["apply_b_dec_to_input"] is False
    loaded = load_sae(folder)
    assert loaded.cfg.is_transcoder and loaded.cfg.hook_name_out == "blocks.0.hook_mlp_out"
    assert loaded.W_dec.shape == (D_SAE, 24) and loaded.b_dec.shape == (24,)
    assert torch.equal(loaded(x), expect)


def _write(folder, cfg, tensors):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "sae_weights.safetensors"))


def _weights(d_in=D_IN, d_sae=D_SAE, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"W_enc": torch.randn(d_in, d_sae, generator=g), "W_dec": torch.randn(d_sae, d_in, generator=g),
            "b_enc": 0.1 * torch.randn(d_sae, generator=g), "b_dec": 0.1 * torch.randn(d_in, generator=g)}


def test_saelens5_topk_cfg(tmp_path):
    """SAELens 5 wrote TopK SAEs as architecture "standard" with activation_fn_str "topk" and top-level hook_name."""
    w = _weights()
    cfg = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "dtype": "torch.float32", "device": "cuda",
           "model_name": "gpt2", "hook_name": "blocks.3.hook_resid_pre", "hook_layer": 3, "hook_head_index": None,
           "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 6}, "apply_b_dec_to_input": True,
           "finetuning_scaling_factor": False, "context_size": 128, "prepend_bos": True,
           "normalize_activations": "none"}
    _write(tmp_path / "s5", cfg, w)
    sae = load_sae(tmp_path / "s5")
    assert type(sae) is TopKSAE and sae.cfg.k == 6
    assert sae.cfg.hook_name == "blocks.3.hook_resid_pre" and sae.cfg.model_name == "gpt2"
    assert sae.cfg.dtype == "float32" and sae.W_enc.device.type == "cpu"
    x = torch.randn(10, D_IN)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    vals, idx = pre.topk(6, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    assert torch.allclose(sae.encode(x), z, atol=1e-5)
    assert torch.allclose(sae(x), z @ w["W_dec"] + w["b_dec"], atol=1e-4)
    # the hook can be overridden at load time
    assert load_sae(tmp_path / "s5", hook_name="blocks.0.hook_resid_post").cfg.hook_name == "blocks.0.hook_resid_post"


def test_saelens5_relu_and_saelens6_topk_cfgs(tmp_path):
    w = _weights()
    _write(tmp_path / "relu", {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "hook_name": HOOK,
                               "activation_fn_str": "relu", "apply_b_dec_to_input": False}, w)
    relu = load_sae(tmp_path / "relu")
    assert type(relu) is ReLUSAE and not relu.cfg.apply_b_dec_to_input
    x = torch.randn(5, D_IN)
    assert torch.allclose(relu.encode(x), (x @ w["W_enc"] + w["b_enc"]).relu(), atol=1e-5)
    _write(tmp_path / "v6", {"architecture": "topk", "d_in": D_IN, "d_sae": D_SAE, "k": 3, "dtype": "float32",
                             "apply_b_dec_to_input": True, "normalize_activations": "none",
                             "metadata": {"hook_name": HOOK, "model_name": "m"}}, w)
    v6 = load_sae(tmp_path / "v6")
    assert type(v6) is TopKSAE and v6.cfg.k == 3 and v6.cfg.hook_name == HOOK
    assert ((v6.encode(x) != 0).sum(-1) <= 3).all()


def _gemma_scope(path, d_in=D_IN, d_sae=D_SAE):
    w = {k: v.numpy() for k, v in _weights(d_in, d_sae).items()}
    w["threshold"] = (0.2 + np.random.default_rng(0).random(d_sae)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **w)
    return w


def test_gemma_scope_npz_loads_as_jumprelu(tmp_path):
    w = _gemma_scope(tmp_path / "layer_3" / "params.npz")
    sae = load_sae(tmp_path / "layer_3" / "params.npz", hook_name="blocks.3.hook_resid_post")
    assert type(sae) is JumpReLUSAE and sae.cfg.hook_name == "blocks.3.hook_resid_post"
    x = torch.randn(20, D_IN)
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    z = pre * (pre > t["threshold"])
    assert (z > 0).any() and ((pre > 0) & (z == 0)).any()
    assert torch.allclose(sae.encode(x), z, atol=1e-5)
    assert torch.allclose(sae(x), z @ t["W_dec"] + t["b_dec"], atol=1e-4)
    # the folder holding params.npz works too
    assert type(load_sae(tmp_path / "layer_3", hook_name="h")) is JumpReLUSAE


def test_gemma_scope_needs_hook_name(tmp_path):
    _gemma_scope(tmp_path / "params.npz")
    with pytest.raises(ShoestringError) as e:
        load_sae(tmp_path / "params.npz")
    assert "hook" in str(e.value) and "\n" not in str(e.value)


# -- broken checkpoints: one line naming the problem ---------------------------------------------

def _good(tmp_path, arch="topk"):
    return save_sae(_sae(arch), tmp_path / "s")


def _edit_cfg(folder, fn):
    cfg = json.loads((folder / "cfg.json").read_text())
    fn(cfg)
    (folder / "cfg.json").write_text(json.dumps(cfg))


def _break_missing_cfg(f):
    (f / "cfg.json").unlink()


def _break_bad_json(f):
    (f / "cfg.json").write_text('{"d_in": 16, "d_sae": ')


def _break_no_d_sae(f):
    _edit_cfg(f, lambda c: c.pop("d_sae"))


def _break_wrong_d_in(f):
    _edit_cfg(f, lambda c: c.update(d_in=D_IN + 1))


def _break_no_weights(f):
    (f / "sae_weights.safetensors").unlink()


def _break_big_k(f):
    def fn(c):
        c["k"] = c["shoestring"]["k"] = D_SAE + 1
    _edit_cfg(f, fn)


def _break_unknown_arch(f):
    def fn(c):
        c["architecture"] = c["shoestring"]["architecture"] = "sparsemax"
    _edit_cfg(f, fn)


def _break_list_cfg(f):
    (f / "cfg.json").write_text("[1, 2]")


def _break_lost_tensor(f):
    t = load_file(str(f / "sae_weights.safetensors"))
    del t["b_enc"]
    save_file(t, str(f / "sae_weights.safetensors"))


@pytest.mark.parametrize("breaker, words", [
    (_break_missing_cfg, "no cfg.json"),
    (_break_bad_json, "not valid JSON"),
    (_break_list_cfg, "not an object"),
    (_break_no_d_sae, "lacks d_sae"),
    (_break_wrong_d_in, "W_enc has shape"),
    (_break_no_weights, "no sae_weights.safetensors"),
    (_break_lost_tensor, "lack b_enc"),
    (_break_big_k, f"k={D_SAE + 1} is larger than the SAE width {D_SAE}"),
    (_break_unknown_arch, "unknown SAE architecture 'sparsemax'"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_broken_checkpoint_raises_one_line(tmp_path, breaker, words):
    folder = _good(tmp_path)
    load_sae(folder)  # fine before
    breaker(folder)
    with pytest.raises(ShoestringError) as e:
        load_sae(folder)
    msg = str(e.value)
    assert words in msg, msg
    assert "\n" not in msg


def test_missing_folder_raises(tmp_path):
    with pytest.raises(ShoestringError) as e:
        load_sae(tmp_path / "nothing")
    assert "no SAE checkpoint folder" in str(e.value) and "\n" not in str(e.value)


def test_normalisation_at_inference_is_refused(tmp_path):
    _write(tmp_path / "n", {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "hook_name": HOOK,
                            "normalize_activations": "layer_norm"}, _weights())
    with pytest.raises(ShoestringError) as e:
        load_sae(tmp_path / "n")
    assert "normalize_activations" in str(e.value) and "\n" not in str(e.value)


def test_expected_average_normalisation_is_folded_already(tmp_path):
    """SAELens folds the expected-average input scale into the weights when training ends."""
    w = _weights()
    _write(tmp_path / "n", {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "hook_name": HOOK,
                            "normalize_activations": "expected_average_only_in"}, w)
    sae = load_sae(tmp_path / "n")
    x = torch.randn(5, D_IN)
    assert sae.cfg.scaling_factor == 1.0
    assert torch.allclose(sae.encode(x), ((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]).relu(), atol=1e-5)
