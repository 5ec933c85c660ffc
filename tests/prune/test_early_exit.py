"""Early exit and the decode-time harness: teacher-forced decoding reproduces the full forward's NLL; exiting
after a layer past which the model does nothing changes neither the logits nor the KV cache (so the skipped
layers' keys and values are propagated correctly); a threshold never reached changes nothing; hooks always go."""

from __future__ import annotations

import math

import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.prune.decode_eval import decode_eval
from shoestring.prune.early_exit import EarlyExit
from shoestring.prune.skip import SkipLayers
from tiny_models import make_model, random_ids


def idle_after(model, layer):
    """Layers after ``layer`` write nothing into the residual stream (zero o and down projections)."""
    with torch.no_grad():
        for b in model.model.layers[layer + 1:]:
            b.self_attn.o_proj.weight.zero_()
            b.mlp.down_proj.weight.zero_()
    return model


def test_teacher_forced_decoding_equals_the_full_forward():
    model = make_model("llama", num_hidden_layers=3).eval()
    ctx = random_ids(2, 12)
    res = decode_eval(model, ctx, prefix=4)
    with torch.no_grad():
        logp = model(input_ids=ctx).logits[:, 3:-1].float().log_softmax(-1)
    want = -logp.gather(-1, ctx[:, 4:, None]).mean()
    assert res["perplexity"] == pytest.approx(math.exp(float(want)), rel=1e-4)
    assert res["tokens"] == 16 and res["decode_tokens_per_s"] > 0
    again = decode_eval(model, ctx, prefix=4, reference=res["argmax"])
    assert again["agreement"] == 1.0
    with pytest.raises(ShoestringError, match="nothing to decode"):
        decode_eval(model, ctx, prefix=11)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("rule", ["saturation", "softmax"])
def test_exit_past_idle_layers_keeps_logits_and_cache(family, rule):
    model = idle_after(make_model(family, num_hidden_layers=4, **({} if family == "llama" else {"layer_types": ["full_attention"] * 4})).eval(), 0)
    L = len(model.model.layers)
    ids = random_ids(1, 9)
    threshold = 0.999 if rule == "saturation" else 1e-6  # any softmax max is above 1e-6
    with torch.no_grad():
        full = model(input_ids=ids[:, :5], use_cache=True)
        cache_f = full.past_key_values
        at = 1 if rule == "saturation" else 0  # saturation: layer 1 returns its input exactly (cosine 1)
        ee = EarlyExit(model, threshold=threshold, rule=rule, layers=[at])
        out_e = model(input_ids=ids[:, :5], use_cache=True)
        cache_e = out_e.past_key_values
        for t in range(5, 9):
            f = model(input_ids=ids[:, t : t + 1], past_key_values=cache_f, use_cache=True)
            with ee:
                e = model(input_ids=ids[:, t : t + 1], past_key_values=cache_e, use_cache=True)
            torch.testing.assert_close(e.logits, f.logits, rtol=1e-5, atol=1e-5)
    assert ee.exits == [at] * 4 and ee.summary()["early_share"] == 1.0
    for j in range(L):  # the skipped layers' keys and values were written, and equal the full model's
        torch.testing.assert_close(cache_e.layers[j].keys, cache_f.layers[j].keys, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(cache_e.layers[j].values, cache_f.layers[j].values, rtol=1e-5, atol=1e-6)
    assert all("forward" not in vars(b) for b in model.model.layers)


def test_a_threshold_never_reached_changes_nothing_and_hooks_go_on_error():
    model = make_model("llama", num_hidden_layers=4).eval()
    ctx = random_ids(1, 10)
    base = decode_eval(model, ctx, prefix=3)
    ee = EarlyExit(model, threshold=1.0, rule="softmax", layers=[1, 2])
    res = decode_eval(model, ctx, prefix=3, intervention=ee, reference=base["argmax"])
    assert res["perplexity"] == pytest.approx(base["perplexity"], rel=1e-5) and res["agreement"] == 1.0
    assert res["mean_exit_layer"] == 3 and res["early_share"] == 0.0
    with pytest.raises(RuntimeError):
        with EarlyExit(model, threshold=0.5):
            raise RuntimeError("boom")
    assert all("forward" not in vars(b) for b in model.model.layers)
    skip = decode_eval(model, ctx, prefix=3, intervention=SkipLayers(model, [2]), reference=base["argmax"])
    assert skip["agreement"] < 1.0 or skip["perplexity"] != base["perplexity"]  # a skipped layer changes the output


@pytest.mark.parametrize("kwargs, words", [({"rule": "entropy"}, "unknown early-exit rule"),
                                           ({"threshold": 0.0}, "outside"), ({"threshold": 1.5}, "outside")])
def test_bad_early_exit_options(kwargs, words):
    with pytest.raises(ShoestringError, match=words):
        EarlyExit(make_model("llama"), **kwargs)


def test_exit_layers_must_precede_the_last():
    model = make_model("llama", num_hidden_layers=3).eval()
    with pytest.raises(ShoestringError, match="must lie in"):
        with EarlyExit(model, layers=[2]):
            pass
