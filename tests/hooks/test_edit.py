"""Editing activations: each edit does what it says, only that, and leaves no trace."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_lm, no_hooks_left, random_ids, snapshot, state_equal
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

import shoestring
from shoestring import replace_with


def _raw_add_hook(v):
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + v, *output[1:])
        return output + v
    return hook


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox_parallel", "gptj", "opt", "gemma2", "phi"])
def test_steering_vector_equals_a_raw_forward_hook(family):
    lm = make_lm(family)
    ids = random_ids()
    v = torch.randn(lm.anatomy.d_model, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with lm.edit({"blocks.0.hook_resid_post": v}):
            edited = lm.model(input_ids=ids).logits
        handle = lm.anatomy.blocks[0].register_forward_hook(_raw_add_hook(v))
        try:
            manual = lm.model(input_ids=ids).logits
        finally:
            handle.remove()
    assert not torch.allclose(plain, edited, atol=1e-3)
    torch.testing.assert_close(edited, manual, rtol=0, atol=1e-6)


def test_number_is_added_and_callable_replaces():
    lm = make_lm("llama")
    ids = random_ids()
    name = "blocks.1.hook_resid_pre"
    with torch.no_grad():
        with lm.capture(name) as base:
            lm.model(input_ids=ids)
        with lm.edit({name: 2.5}), lm.capture(name) as added:
            lm.model(input_ids=ids)
        with lm.edit({name: lambda a: a * 0 + 7}), lm.capture(name) as repl:
            lm.model(input_ids=ids)
        with lm.edit({name: replace_with(torch.full((32,), 3.0))}), lm.capture(name) as rw:
            lm.model(input_ids=ids)
    torch.testing.assert_close(added[name], base[name] + 2.5)
    assert torch.all(repl[name] == 7)
    assert torch.all(rw[name] == 3)


def test_in_place_edit_returning_none():
    lm = make_lm("llama")
    ids = random_ids()

    def zero_last(a):
        a[:, -1] = 0

    with torch.no_grad(), lm.edit({"blocks.0.hook_resid_post": zero_last}), \
            lm.capture(["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"]) as acts:
        lm.model(input_ids=ids)
    assert torch.all(acts["blocks.0.hook_resid_post"][:, -1] == 0)
    assert torch.all(acts["blocks.1.hook_resid_pre"][:, -1] == 0)
    assert acts["blocks.1.hook_resid_pre"][:, :-1].abs().sum() > 0


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox_parallel", "phi3"])
def test_zero_ablating_a_head_via_z(family):
    lm = make_lm(family)
    ids = random_ids()
    head, L = 2, 1
    b = f"blocks.{L}"
    names = [f"{b}.attn.hook_z", f"{b}.attn.hook_result", f"{b}.hook_attn_out", "blocks.0.hook_attn_out"]

    def ablate(z):
        z = z.clone()
        z[:, :, head] = 0
        return z

    with torch.no_grad():
        with lm.capture(names) as orig:
            logits0 = lm.model(input_ids=ids).logits
        with lm.edit({f"{b}.attn.hook_z": ablate}), lm.capture(names) as abl:
            logits1 = lm.model(input_ids=ids).logits
    assert torch.all(abl[f"{b}.attn.hook_z"][:, :, head] == 0)
    assert torch.all(abl[f"{b}.attn.hook_result"][:, :, head] == 0)
    others = [h for h in range(lm.anatomy.n_heads) if h != head]
    torch.testing.assert_close(abl[f"{b}.attn.hook_result"][:, :, others], orig[f"{b}.attn.hook_result"][:, :, others])
    drop = orig[f"{b}.hook_attn_out"] - abl[f"{b}.hook_attn_out"]
    torch.testing.assert_close(drop, orig[f"{b}.attn.hook_result"][:, :, head], rtol=1e-5, atol=1e-5)
    assert torch.equal(orig["blocks.0.hook_attn_out"], abl["blocks.0.hook_attn_out"])  # earlier layer untouched
    assert not torch.allclose(logits0, logits1)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox_parallel", "gpt_neox_sequential", "phi3", "llama"])
@pytest.mark.parametrize("target", ["q", "k", "v"])
def test_fused_qkv_edit_touches_only_its_slice(family, target):
    lm = make_lm(family)
    ids = random_ids()
    b = "blocks.1.attn"
    names = [f"{b}.hook_q", f"{b}.hook_k", f"{b}.hook_v"]
    with torch.no_grad():
        with lm.capture(names) as orig:
            lm.model(input_ids=ids)
        with lm.edit({f"{b}.hook_{target}": lambda x: torch.full_like(x, 0.5)}), lm.capture(names) as ed:
            lm.model(input_ids=ids)
    for letter in "qkv":
        name = f"{b}.hook_{letter}"
        if letter == target:
            assert torch.all(ed[name] == 0.5)
        else:
            assert torch.equal(ed[name], orig[name]), name


def test_edit_one_head_of_interleaved_qkv():
    lm = make_lm("gpt_neox_parallel")
    ids = random_ids()
    b = "blocks.0.attn"
    with torch.no_grad():
        with lm.capture([f"{b}.hook_q", f"{b}.hook_k"]) as orig:
            lm.model(input_ids=ids)

        def bump(q):
            q = q.clone()
            q[:, :, 1] += 1
            return q

        with lm.edit({f"{b}.hook_q": bump}), lm.capture([f"{b}.hook_q", f"{b}.hook_k"]) as ed:
            lm.model(input_ids=ids)
    diff = ed[f"{b}.hook_q"] - orig[f"{b}.hook_q"]
    torch.testing.assert_close(diff[:, :, 1], torch.ones_like(diff[:, :, 1]))
    assert torch.all(diff[:, :, [0, 2, 3]] == 0)
    assert torch.equal(ed[f"{b}.hook_k"], orig[f"{b}.hook_k"])


MID = ["blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post"]


def _mid_runs(lm, delta):
    ids = random_ids()
    with torch.no_grad():
        with lm.capture(MID) as a0:
            lm.model(input_ids=ids)
        with lm.edit({"blocks.0.hook_resid_mid": delta}), lm.capture(MID) as a1:
            lm.model(input_ids=ids)
    return a0, a1


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "olmo2", "opt", "gpt_neox_sequential"])
def test_resid_mid_edit_reaches_resid_post(family):
    """The edited residual reaches the block output: resid_post = edited resid_mid + the true MLP branch output."""
    lm = make_lm(family)
    ids = random_ids()
    delta = torch.randn(lm.anatomy.d_model, generator=torch.Generator().manual_seed(4))
    true_mlp = {}
    # registered before the edit, so it sees the MLP branch output before shoestring touches it
    h = lm.anatomy.block(0).mlp_branch_out.register_forward_hook(
        lambda m, a, o: true_mlp.__setitem__("o", (o[0] if isinstance(o, tuple) else o).clone()))
    try:
        with torch.no_grad():
            with lm.capture(MID) as a0:
                lm.model(input_ids=ids)
            mlp0 = true_mlp["o"].reshape(2, 7, -1)
            with lm.edit({"blocks.0.hook_resid_mid": delta}), lm.capture(MID) as a1:
                lm.model(input_ids=ids)
            mlp1 = true_mlp["o"].reshape(2, 7, -1)
    finally:
        h.remove()
    mid_diff = a1["blocks.0.hook_resid_mid"] - a0["blocks.0.hook_resid_mid"]
    torch.testing.assert_close(mid_diff, delta.expand_as(mid_diff), rtol=0, atol=1e-5)
    assert not torch.allclose(mlp0, mlp1)  # the MLP saw the edited residual
    torch.testing.assert_close(a1["blocks.0.hook_resid_post"], a1["blocks.0.hook_resid_mid"] + mlp1,
                               rtol=1e-5, atol=1e-5)
    post_diff = a1["blocks.0.hook_resid_post"] - a0["blocks.0.hook_resid_post"]
    torch.testing.assert_close(post_diff, delta + (mlp1 - mlp0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_resid_mid_edit_decomposes_as_delta_plus_mlp_change(family):
    lm = make_lm(family)
    delta = torch.randn(lm.anatomy.d_model, generator=torch.Generator().manual_seed(4))
    a0, a1 = _mid_runs(lm, delta)
    post_diff = a1["blocks.0.hook_resid_post"] - a0["blocks.0.hook_resid_post"]
    mlp_diff = a1["blocks.0.hook_mlp_out"] - a0["blocks.0.hook_mlp_out"]
    torch.testing.assert_close(post_diff, delta + mlp_diff, rtol=1e-5, atol=1e-5)


def test_resid_mid_edit_equals_manual_rewrite():
    """Ground truth by hand for llama: resid_post = (pre + attn + delta) + mlp(ln2(pre + attn + delta))."""
    lm = make_lm("llama")
    ids = random_ids()
    delta = torch.randn(32, generator=torch.Generator().manual_seed(4))
    block = lm.anatomy.block(0)
    with torch.no_grad():
        with lm.capture(["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out"]) as a:
            lm.model(input_ids=ids)
        mid = a["blocks.0.hook_resid_pre"] + a["blocks.0.hook_attn_out"] + delta
        expect = mid + block.mlp(block.ln2(mid))
        with lm.edit({"blocks.0.hook_resid_mid": delta}), lm.capture("blocks.0.hook_resid_post") as e:
            lm.model(input_ids=ids)
    torch.testing.assert_close(e["blocks.0.hook_resid_post"], expect, rtol=1e-5, atol=1e-5)


def test_opt_resid_mid_edit_sees_batch_pos():
    lm = make_lm("opt")
    shapes = []
    with torch.no_grad(), lm.edit({"blocks.0.hook_resid_mid": lambda a: shapes.append(tuple(a.shape))}):
        lm.model(input_ids=random_ids(2, 7))
    assert shapes == [(2, 7, 32)]


def test_editing_capture_only_point_raises():
    lm = make_lm("llama")
    for name in ("blocks.0.attn.hook_pattern", "blocks.0.attn.hook_result", "blocks.0.attn.hook_rot_q"):
        with pytest.raises(shoestring.ShoestringError, match="captured but not edited") as err:
            lm.edit({name: lambda a: a})
        assert "\n" not in str(err.value) and "hook_z" in str(err.value)
    assert no_hooks_left(lm.model) == []


def test_capture_sees_edit_regardless_of_nesting_order():
    lm = make_lm("llama")
    ids = random_ids()
    name = "blocks.0.hook_resid_post"
    with torch.no_grad():
        with lm.capture(name) as base:
            lm.model(input_ids=ids)
        with lm.capture(name) as outer_cap, lm.edit({name: 1.0}):
            lm.model(input_ids=ids)
        with lm.edit({name: 1.0}), lm.capture(name) as inner_cap:
            lm.model(input_ids=ids)
    torch.testing.assert_close(outer_cap[name], base[name] + 1)
    torch.testing.assert_close(inner_cap[name], base[name] + 1)


def test_two_edits_at_one_point_compose_in_order():
    lm = make_lm("llama")
    name = "blocks.0.hook_resid_post"
    with torch.no_grad(), lm.capture(name) as cap, lm.edit({name: lambda a: a * 0}), lm.edit({name: 2.0}):
        lm.model(input_ids=random_ids())
    assert torch.all(cap[name] == 2)


def test_ctx_is_passed_to_two_argument_functions():
    lm = make_lm("llama")
    seen = []
    with torch.no_grad(), lm.edit({"blocks.*.hook_resid_post": lambda a, ctx: seen.append((ctx.name, ctx.layer, ctx.call))}):
        lm.model(input_ids=random_ids())
        lm.model(input_ids=random_ids())
    assert sorted(seen) == [("blocks.0.hook_resid_post", 0, 0), ("blocks.0.hook_resid_post", 0, 1),
                            ("blocks.1.hook_resid_post", 1, 0), ("blocks.1.hook_resid_post", 1, 1)]


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt"])
def test_model_identical_after_edit_blocks_even_on_error(family):
    lm = make_lm(family)
    ids = random_ids()
    before = snapshot(lm.model)
    mapping = dict(ALL_ATTENTION_FUNCTIONS._local_mapping)
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        editable = [n for n, s in lm.hook_points.items() if s.write is not None]
        with lm.edit({n: (lambda a: a * 1.01) for n in editable}), lm.capture("*"):
            lm.model(input_ids=ids)
        assert no_hooks_left(lm.model) == []

        def boom(a):
            raise RuntimeError("inside the forward")

        with pytest.raises(RuntimeError, match="inside the forward"):
            with lm.capture(["blocks.*.attn.hook_pattern", "blocks.*.hook_resid_mid"]), \
                    lm.edit({"blocks.0.hook_resid_mid": 1.0, "blocks.1.hook_mlp_out": boom}):
                lm.model(input_ids=ids)
        with pytest.raises(KeyError):
            with lm.edit({"blocks.0.hook_resid_post": 3.0}):
                raise KeyError("raised in the block body")
        after = lm.model(input_ids=ids).logits
    assert torch.equal(plain, after)
    assert state_equal(before, snapshot(lm.model))
    assert no_hooks_left(lm.model) == []
    assert lm._registry.active() == 0 and lm._registry.pending == {}
    assert dict(ALL_ATTENTION_FUNCTIONS._local_mapping) == mapping


def test_edit_with_gradients_flows_to_steering_vector():
    lm = make_lm("llama")
    v = torch.zeros(32, requires_grad=True)
    with lm.edit({"blocks.0.hook_resid_post": lambda a: a + v}):
        loss = lm.model(input_ids=random_ids()).logits.logsumexp(-1).sum()
    loss.backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_editing_logits_changes_the_output(family):
    lm = make_lm(family)
    ids = random_ids()

    def force_42(logits):
        logits = logits.clone()
        logits[..., 42] = logits.max() + 5
        return logits

    with torch.no_grad(), lm.edit({"hook_logits": force_42}), lm.capture("hook_logits") as acts:
        out = lm.model(input_ids=ids).logits
    assert torch.all(out.argmax(-1) == 42)
    assert torch.equal(acts["hook_logits"], out)


def test_glob_edit_applies_to_every_layer():
    lm = make_lm("llama")
    ids = random_ids()
    with torch.no_grad():
        with lm.capture(["blocks.*.hook_resid_pre", "blocks.*.hook_resid_post"]) as base:
            lm.model(input_ids=ids)
        with lm.edit({"blocks.*.hook_resid_post": lambda a: a * 0}), \
                lm.capture(["blocks.*.hook_resid_post", "blocks.1.hook_resid_pre"]) as ed:
            lm.model(input_ids=ids)
    assert torch.all(ed["blocks.0.hook_resid_post"] == 0) and torch.all(ed["blocks.1.hook_resid_post"] == 0)
    assert torch.all(ed["blocks.1.hook_resid_pre"] == 0)
    assert base["blocks.1.hook_resid_pre"].abs().sum() > 0
