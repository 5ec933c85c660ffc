"""The hook invariants hold for every family and attention implementation, and a broken hook is named."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from tiny_models import family_impls, make_lm, make_model, random_ids

import shoestring
from shoestring.hooks.invariants import check_invariants
from shoestring.models import lm as lm_module


@pytest.mark.parametrize("family, impl", family_impls())
def test_invariants_hold(family, impl):
    lm = make_lm(family, impl)
    assert lm.model.config._attn_implementation == impl
    report = check_invariants(lm, random_ids(2, 7))
    assert report["ok"], report["failed"]
    assert report["failed"] == []
    # every layer was checked (the report is not vacuous)
    for L in range(lm.n_layers):
        assert f"blocks.{L}.pattern@v=z" in report["errors"]
        assert f"blocks.{L}.resid_post=pre+attn+mlp" in report["errors"]
        assert (f"blocks.{L}.resid_mid=pre+attn" in report["errors"]) == (not lm.anatomy.parallel)
    assert "unembed(resid_post[-1])=logits" in report["errors"]


def _break(lm, name, read):
    lm.hook_points[name] = dataclasses.replace(lm.hook_points[name], read=read)


def test_failing_invariant_is_named():
    lm = make_lm("llama")
    _break(lm, "blocks.1.hook_attn_out", lambda raw: raw * 2)
    report = check_invariants(lm, random_ids(2, 7))
    assert not report["ok"]
    assert "blocks.1.resid_post=pre+attn+mlp" in report["failed"]
    assert "blocks.1.resid_mid=pre+attn" in report["failed"]
    # layer 0 is untouched
    assert not any(k.startswith("blocks.0.") for k in report["failed"])


def test_wrong_pattern_is_caught():
    lm = make_lm("llama")
    spec = lm.hook_points["blocks.0.attn.hook_v"]
    # a v read that swaps the kv heads: pattern @ v no longer gives z
    _break(lm, "blocks.0.attn.hook_v", lambda raw: spec.read(raw).flip(2))
    report = check_invariants(lm, random_ids(2, 7))
    assert report["failed"] == ["blocks.0.pattern@v=z"]


def test_lm_warns_when_invariants_fail(monkeypatch):
    import shoestring.hooks.invariants as inv

    monkeypatch.setattr(lm_module, "_CHECKED", set())
    monkeypatch.setattr(inv, "check_invariants", lambda lm: {"ok": False, "failed": ["blocks.0.fake"], "errors": {}})
    with pytest.warns(UserWarning, match=r"blocks\.0\.fake"):
        shoestring.LM(make_model("llama"), None, check=True)
    assert lm_module._CHECKED == set()


def test_lm_check_passes_quietly_and_is_remembered(monkeypatch):
    monkeypatch.setattr(lm_module, "_CHECKED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        shoestring.LM(make_model("llama"), None, check=True)
    assert lm_module._CHECKED == {"LlamaForCausalLM/sdpa"}


def test_invariants_default_input_and_bf16():
    lm = make_lm("llama")
    lm.model.to(torch.bfloat16)
    report = check_invariants(lm)
    assert report["tol"] == pytest.approx(3e-2)
    assert report["ok"], report["errors"]


def test_invariants_compare_plain_tensors(monkeypatch):
    """check_invariants must not hand autograd-tracked tensors to _rel (torch warns on float() of those)."""
    import shoestring.hooks.invariants as inv

    tracked = []
    real = inv._rel

    def spy(a, b):
        tracked.append(a.requires_grad or b.requires_grad)
        return real(a, b)

    monkeypatch.setattr(inv, "_rel", spy)
    assert inv.check_invariants(make_lm("gpt2"), random_ids())["ok"]
    assert tracked and not any(tracked)
