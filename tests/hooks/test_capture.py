"""Capturing: it changes nothing, keeps what was asked, in the form asked, and leaves no trace."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_lm, make_model, no_hooks_left, random_ids, snapshot, state_equal
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

import shoestring

ALL_FAMILIES = ["gpt2", "gpt_neox_parallel", "gptj", "opt", "llama", "mixtral", "gemma2", "phi3", "olmo2", "phi"]


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_capturing_everything_changes_no_logits(family):
    lm = make_lm(family, "sdpa")
    ids = random_ids()
    before = snapshot(lm.model)
    mapping = dict(ALL_ATTENTION_FUNCTIONS._local_mapping)
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with lm.capture(list(lm.hook_points)) as acts:
            hooked = lm.model(input_ids=ids).logits
        after = lm.model(input_ids=ids).logits
    assert torch.equal(plain, hooked)
    assert torch.equal(plain, after)
    assert torch.equal(acts["hook_logits"], plain)
    assert state_equal(before, snapshot(lm.model))
    assert no_hooks_left(lm.model) == []
    assert lm._registry.active() == 0
    assert dict(ALL_ATTENTION_FUNCTIONS._local_mapping) == mapping


def test_hook_logits_are_the_model_logits_with_softcap():
    lm = make_lm("gemma2", "eager")
    assert lm.anatomy.logit_softcap
    ids = random_ids()
    with torch.no_grad(), lm.capture("hook_logits") as acts:
        logits = lm.model(input_ids=ids).logits
    torch.testing.assert_close(acts["hook_logits"], logits)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox_sequential", "gemma3_text", "opt"])
def test_resid_post_equals_hidden_states(family):
    lm = make_lm(family)
    ids = random_ids()
    with torch.no_grad(), lm.capture("blocks.*.hook_resid_post") as acts:
        out = lm.model(input_ids=ids, output_hidden_states=True)
    assert len(acts) == lm.n_layers
    for L in range(lm.n_layers - 1):  # HF applies the final norm to the last hidden state
        torch.testing.assert_close(acts[f"blocks.{L}.hook_resid_post"], out.hidden_states[L + 1], rtol=0, atol=1e-6)
    # and the last one goes through ln_final + unembed to the logits
    torch.testing.assert_close(lm.unembed(acts[f"blocks.{lm.n_layers - 1}.hook_resid_post"]), out.logits,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox_parallel", "opt", "phi", "phi3", "gemma3_text", "qwen3"])
def test_pattern_from_sdpa_equals_eager_weights(family):
    lm = make_lm(family, "sdpa")
    assert lm.model.config._attn_implementation == "sdpa"
    eager = make_model(family, "eager")
    eager.load_state_dict(lm.model.state_dict())
    ids = random_ids()
    with torch.no_grad(), lm.capture("blocks.*.attn.hook_pattern") as acts:
        lm.model(input_ids=ids)
    with torch.no_grad():
        ref = eager(input_ids=ids, output_attentions=True).attentions
    for L in range(lm.n_layers):
        pat = acts[f"blocks.{L}.attn.hook_pattern"]
        assert pat.shape == (2, lm.anatomy.n_heads, 7, 7)
        torch.testing.assert_close(pat.sum(-1), torch.ones(2, lm.anatomy.n_heads, 7), rtol=0, atol=1e-5)
        assert torch.all(pat.triu(1) == 0)  # causal
        torch.testing.assert_close(pat, ref[L], rtol=1e-5, atol=1e-6)
    # the sdpa model stayed sdpa
    assert lm.model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("family", ["mistral", "gemma3_text"])
def test_pattern_respects_sliding_window(family):
    lm = make_lm(family, "sdpa", sliding_window=3)
    eager = make_model(family, "eager", sliding_window=3)
    eager.load_state_dict(lm.model.state_dict())
    ids = random_ids(2, 9)
    with torch.no_grad(), lm.capture("blocks.*.attn.hook_pattern") as acts:
        lm.model(input_ids=ids)
    with torch.no_grad():
        ref = eager(input_ids=ids, output_attentions=True).attentions
    for L in range(lm.n_layers):
        torch.testing.assert_close(acts[f"blocks.{L}.attn.hook_pattern"], ref[L], rtol=1e-5, atol=1e-6)
    # at least one layer really uses the window (keys more than 2 back get nothing)
    windowed = [torch.all(acts[f"blocks.{L}.attn.hook_pattern"].tril(-3) == 0) for L in range(lm.n_layers)]
    assert any(windowed)


def test_pattern_with_left_padding_matches_eager():
    lm = make_lm("llama", "sdpa")
    eager = make_model("llama", "eager")
    eager.load_state_dict(lm.model.state_dict())
    ids = random_ids(2, 7)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    with torch.no_grad(), lm.capture("blocks.*.attn.hook_pattern") as acts:
        lm.model(input_ids=ids, attention_mask=mask)
    with torch.no_grad():
        ref = eager(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    for L in range(lm.n_layers):
        pat = acts[f"blocks.{L}.attn.hook_pattern"]
        torch.testing.assert_close(pat[:, :, 3:], ref[L][:, :, 3:], rtol=1e-5, atol=1e-6)
        assert torch.all(pat[1, :, 3:, :3] == 0)  # no weight on padding


def test_pattern_tap_restores_attention_mapping_also_on_error():
    lm = make_lm("llama", "sdpa")
    before = dict(ALL_ATTENTION_FUNCTIONS._local_mapping)
    assert "sdpa" not in before
    with pytest.raises(RuntimeError, match="boom"):
        with torch.no_grad(), lm.capture(["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_rot_q"]):
            assert getattr(ALL_ATTENTION_FUNCTIONS._local_mapping["sdpa"], "_shoestring_tap", False)
            lm.model(input_ids=random_ids())
            raise RuntimeError("boom")
    assert dict(ALL_ATTENTION_FUNCTIONS._local_mapping) == before
    assert no_hooks_left(lm.model) == []


def test_pattern_tap_keeps_a_user_registered_attention_function():
    lm = make_lm("llama", "sdpa")
    calls = []
    sdpa = type(ALL_ATTENTION_FUNCTIONS)._global_mapping["sdpa"]

    def mine(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    ALL_ATTENTION_FUNCTIONS._local_mapping["sdpa"] = mine
    try:
        with torch.no_grad(), lm.capture("blocks.0.attn.hook_pattern") as acts:
            lm.model(input_ids=random_ids())
        assert len(calls) == lm.n_layers  # the user's function still ran, under the tap
        assert acts["blocks.0.attn.hook_pattern"].shape[-1] == 7
        assert ALL_ATTENTION_FUNCTIONS._local_mapping["sdpa"] is mine
    finally:
        ALL_ATTENTION_FUNCTIONS._local_mapping.pop("sdpa", None)


def test_nested_pattern_captures_share_one_tap():
    lm = make_lm("llama", "sdpa")
    before = dict(ALL_ATTENTION_FUNCTIONS._local_mapping)
    with torch.no_grad(), lm.capture("blocks.0.attn.hook_pattern") as outer:
        with lm.capture("blocks.*.attn.hook_pattern") as inner:
            lm.model(input_ids=random_ids())
        assert "sdpa" in ALL_ATTENTION_FUNCTIONS._local_mapping  # outer still open
        lm.model(input_ids=random_ids())
    assert dict(ALL_ATTENTION_FUNCTIONS._local_mapping) == before
    assert len(outer.calls("blocks.0.attn.hook_pattern")) == 2
    assert len(inner.calls("blocks.1.attn.hook_pattern")) == 1
    assert torch.equal(outer.calls("blocks.0.attn.hook_pattern")[0], inner["blocks.0.attn.hook_pattern"])


def test_rot_q_and_rot_k_are_post_rope():
    lm = make_lm("llama", "sdpa")
    ids = random_ids()
    names = ["blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_rot_q", "blocks.0.attn.hook_rot_k"]
    with torch.no_grad(), lm.capture(names) as acts:
        lm.model(input_ids=ids)
    q, k, rq, rk = (acts[n] for n in names)
    assert rq.shape == q.shape == (2, 7, 4, 8) and rk.shape == k.shape == (2, 7, 2, 8)
    torch.testing.assert_close(rq[:, 0], q[:, 0])  # rotation by angle 0 at position 0
    assert not torch.allclose(rq[:, 1:], q[:, 1:])
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))  # a rotation keeps norms
    torch.testing.assert_close(rk.norm(dim=-1), k.norm(dim=-1))


def test_model_unchanged_after_exception_in_capture_block():
    lm = make_lm("gpt2")
    before = snapshot(lm.model)
    with pytest.raises(ValueError):
        with lm.capture("*"):
            lm.model(input_ids=random_ids())
            raise ValueError
    assert no_hooks_left(lm.model) == []
    assert state_equal(before, snapshot(lm.model))


# -- options -----------------------------------------------------------------------------------------


def test_glob_patterns_and_only_requested_names():
    lm = make_lm("llama")
    with torch.no_grad(), lm.capture(["blocks.*.hook_resid_post", "blocks.1.attn.hook_?"]) as acts:
        lm.model(input_ids=random_ids())
    assert set(acts) == {"blocks.0.hook_resid_post", "blocks.1.hook_resid_post",
                         "blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.1.attn.hook_v",
                         "blocks.1.attn.hook_z"}
    assert "blocks.0.attn.hook_q" not in acts
    with pytest.raises(shoestring.ShoestringError, match="was not captured"):
        acts.calls("blocks.0.attn.hook_q")
    assert acts.nbytes() == sum(t.numel() * 4 for t in acts.values())


def test_detach_false_keeps_gradient():
    lm = make_lm("llama")
    with lm.capture("blocks.0.hook_resid_post", detach=False) as acts:
        lm.model(input_ids=random_ids())
    act = acts["blocks.0.hook_resid_post"]
    assert act.requires_grad
    act.pow(2).sum().backward()
    grad = lm.model.get_input_embeddings().weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_detach_default_cuts_graph():
    lm = make_lm("llama")
    with lm.capture("blocks.0.hook_resid_post") as acts:
        lm.model(input_ids=random_ids())
    assert not acts["blocks.0.hook_resid_post"].requires_grad


def test_device_and_dtype_conversion():
    lm = make_lm("llama")
    with torch.no_grad(), lm.capture("blocks.*.hook_resid_post", device="cpu", dtype=torch.float16) as acts, \
            lm.capture("blocks.*.hook_resid_post") as full:
        lm.model(input_ids=random_ids())
    a = acts["blocks.0.hook_resid_post"]
    assert a.dtype == torch.float16 and a.device.type == "cpu"
    torch.testing.assert_close(a, full["blocks.0.hook_resid_post"].half())


@pytest.mark.parametrize("pos, expect", [(-1, [6]), (0, [0]), (-2, [5]), (slice(2, 5), [2, 3, 4]),
                                         (torch.tensor([1, 4]), [1, 4])])
def test_pos_keeps_only_those_positions(pos, expect):
    lm = make_lm("llama")
    names = ["blocks.0.hook_resid_post", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_q"]
    with torch.no_grad(), lm.capture(names, pos=pos) as acts, lm.capture(names) as full:
        lm.model(input_ids=random_ids())
    idx = torch.tensor(expect)
    assert torch.equal(acts["blocks.0.hook_resid_post"], full["blocks.0.hook_resid_post"][:, idx])
    assert torch.equal(acts["blocks.0.attn.hook_q"], full["blocks.0.attn.hook_q"][:, idx])
    # the pattern is cut along queries, keeping all keys
    assert torch.equal(acts["blocks.0.attn.hook_pattern"], full["blocks.0.attn.hook_pattern"][:, :, idx])


def test_calls_and_join():
    lm = make_lm("llama")
    with torch.no_grad(), lm.capture(["hook_embed", "blocks.0.attn.hook_pattern"]) as acts:
        lm.model(input_ids=random_ids(2, 3))
        lm.model(input_ids=random_ids(2, 4, seed=5))
    assert [c.shape[1] for c in acts.calls("hook_embed")] == [3, 4]
    assert acts["hook_embed"].shape == (2, 7, 32)
    with pytest.raises(shoestring.ShoestringError, match="calls"):
        acts["blocks.0.attn.hook_pattern"]
    acts.clear()
    with pytest.raises(shoestring.ShoestringError, match="nothing captured"):
        acts["hook_embed"]


def test_calls_of_different_batch_sizes_are_not_joined():
    lm = make_lm("llama")
    with torch.no_grad(), lm.capture("hook_embed") as acts:
        lm.model(input_ids=random_ids(1, 3))
        lm.model(input_ids=random_ids(2, 3))
    with pytest.raises(shoestring.ShoestringError):
        acts["hook_embed"]


def test_opt_flat_mlp_points_are_batch_pos():
    lm = make_lm("opt")
    ids = random_ids(2, 5)
    with torch.no_grad(), lm.capture(["blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out",
                                      "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
                                      "blocks.0.hook_attn_out", "blocks.0.hook_resid_pre"]) as acts:
        lm.model(input_ids=ids)
    assert acts["blocks.0.mlp.hook_post"].shape == (2, 5, 64)
    assert acts["blocks.0.hook_mlp_out"].shape == (2, 5, 32)
    a = acts
    torch.testing.assert_close(a["blocks.0.hook_resid_mid"] + a["blocks.0.hook_mlp_out"], a["blocks.0.hook_resid_post"])
    torch.testing.assert_close(a["blocks.0.hook_resid_pre"] + a["blocks.0.hook_attn_out"], a["blocks.0.hook_resid_mid"])


@pytest.mark.parametrize("family", ["gpt2", "opt"])
def test_pos_embed_has_declared_batch_axis(family):
    lm = make_lm(family)
    spec = lm.hook_points["hook_pos_embed"]
    assert spec.shape == "batch pos d_model"
    with torch.no_grad(), lm.capture("hook_pos_embed") as acts:
        lm.model(input_ids=random_ids(2, 7))
    assert acts["hook_pos_embed"].shape == (2, 7, 32)


def test_pos_embed_edit_equals_zeroed_position_weights():
    import copy

    lm = make_lm("gpt2")
    ids = random_ids(2, 7)
    ref = copy.deepcopy(lm.model)
    ref.transformer.wpe.weight.data.zero_()
    with torch.no_grad():
        base = lm.model(input_ids=ids).logits
        with lm.edit({"hook_pos_embed": lambda pe: pe * 0}):
            edited = lm.model(input_ids=ids).logits
        expected = ref(input_ids=ids).logits
    assert not torch.allclose(base, edited)
    torch.testing.assert_close(edited, expected)


def test_pattern_from_a_2d_padding_mask_equals_the_4d_mask():
    """Flash attention hands the attention function a [batch, key] padding mask (no causal part)."""
    from types import SimpleNamespace

    from shoestring.hooks.attention_tap import pattern_from_qk

    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8)
    pad = torch.tensor([[False, True, True, True, True], [True, True, True, True, True]])
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    full = causal[None, None] & pad[:, None, None, :]
    mod = SimpleNamespace(scaling=8 ** -0.5)
    a = pattern_from_qk(mod, q, k, pad, {})
    b = pattern_from_qk(mod, q, k, full, {})
    torch.testing.assert_close(a, b)
    assert float(a[:, :, :, :].triu(1).abs().max()) == 0.0  # nothing on future keys
