"""Pruning surgery on tiny Llama-layout models: the sliced model computes exactly what the original computes with
the same structures zeroed, it saves and reloads in plain transformers with identical logits, and bad plans are
one clear line."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as T

from shoestring.errors import ShoestringError
from shoestring.prune import CRITERIA, PruningPlan, apply_plan, model_shape, n_params, plan_from_scores
from shoestring.prune.surgery import group_rows
from tiny_models import make_model, random_ids


@pytest.fixture(params=["llama", "qwen2", "gemma"])
def model(request):
    return make_model(request.param).eval()


def zeroed(model, plan):
    """The original model with the pruned structures' contributions zeroed (o columns, down columns)."""
    z = copy.deepcopy(model)
    c = z.config
    G = c.num_key_value_heads
    d = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    r = c.num_attention_heads // G
    with torch.no_grad():
        for i, b in enumerate(z.model.layers):
            if i in plan.kv_groups:
                gone = [g for g in range(G) if g not in plan.kv_groups[i]]
                b.self_attn.o_proj.weight[:, group_rows(gone, d, r)] = 0
            if i in plan.channels:
                gone = [j for j in range(c.intermediate_size) if j not in plan.channels[i]]
                b.mlp.down_proj.weight[:, gone] = 0
    return z


def test_sliced_model_equals_the_zeroed_original(model):
    plan = PruningPlan(model_shape(model.config), kv_groups={0: [1], 1: [0]}, channels={0: list(range(0, 64, 2)),
                                                                                        1: list(range(32))})
    ids = random_ids()
    want = zeroed(model, plan)(input_ids=ids).logits
    before = n_params(model)
    pruned = apply_plan(model, plan)
    got = pruned(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert n_params(pruned) < before
    assert pruned.model.layers[0].mlp.gate_proj.weight.shape[0] == 32
    assert pruned.config.num_key_value_heads == 1 and pruned.config.intermediate_size == 32


def test_uniform_prune_saves_and_reloads_in_plain_transformers(model, tmp_path):
    scores = CRITERIA["wanda"]().score(model, [random_ids(2, 16)])
    plan = plan_from_scores(model, scores, head_ratio=0.5, channel_ratio=0.25)
    assert plan.is_uniform()
    pruned = apply_plan(model, plan)
    pruned.save_pretrained(tmp_path / "pruned")
    again = T.AutoModelForCausalLM.from_pretrained(tmp_path / "pruned").eval()
    ids = random_ids(2, 9)
    assert torch.equal(again(input_ids=ids).logits, pruned(input_ids=ids).logits)
    assert n_params(again) == n_params(pruned)
    out = again.generate(ids, max_new_tokens=4, do_sample=False)  # the KV cache works on the smaller shapes
    assert out.shape == (2, 13)


def test_dropping_a_layer_renumbers_the_cache(tmp_path):
    model = make_model("llama", num_hidden_layers=3).eval()
    plan = PruningPlan(model_shape(model.config), drop_layers=[1])
    ids = random_ids()
    pruned = apply_plan(model, plan)
    assert len(pruned.model.layers) == 2 and pruned.config.num_hidden_layers == 2
    assert [b.self_attn.layer_idx for b in pruned.model.layers] == [0, 1]
    pruned.save_pretrained(tmp_path / "p")
    again = T.AutoModelForCausalLM.from_pretrained(tmp_path / "p").eval()
    assert torch.equal(again(input_ids=ids).logits, pruned(input_ids=ids).logits)
    assert again.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3


def test_magnitude_and_wanda_rank_a_zeroed_channel_last(model):
    with torch.no_grad():
        model.model.layers[0].mlp.gate_proj.weight[5] = 0
        model.model.layers[0].mlp.up_proj.weight[5] = 0
        model.model.layers[0].mlp.down_proj.weight[:, 5] = 0
    for name, crit in CRITERIA.items():
        if name == "ablation" or getattr(crit, "heads_only", False):  # ablation: a loss difference, can be
            continue  # negative on a random model (see its own test); entropy scores heads only
        s = crit().score(model, [random_ids()])
        assert int(s["channels"][0].argmin()) == 5, name
        assert s["kv_groups"][1].shape == (model.config.num_key_value_heads,)


def test_plan_file_round_trips_and_global_selection(model, tmp_path):
    scores = CRITERIA["magnitude"]().score(model)
    plan = plan_from_scores(model, scores, channel_ratio=0.5, uniform=False)
    kept = sum(len(v) for v in plan.channels.values())
    assert abs(kept - 64) <= 2  # half of 2 x 64 channels, spread by score
    plan.save(tmp_path / "plan.json")
    back = PruningPlan.load(tmp_path / "plan.json")
    assert back.channels == plan.channels and back.model == plan.model


@pytest.mark.parametrize("kwargs, words", [
    (dict(head_ratio=1.0), "outside [0, 1)"),
    (dict(channel_ratio=-0.1), "outside [0, 1)"),
    (dict(), "nothing would be pruned"),
])
def test_bad_ratios(model, kwargs, words):
    scores = CRITERIA["magnitude"]().score(model)
    with pytest.raises(ShoestringError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        plan_from_scores(model, scores, **kwargs)


def test_bad_plans(model):
    shape = model_shape(model.config)
    with pytest.raises(ShoestringError, match="removes every one of the 2 key-value groups of layer 0"):
        apply_plan(model, PruningPlan(shape, kv_groups={0: []}))
    with pytest.raises(ShoestringError, match="made for another model"):
        apply_plan(model, PruningPlan({**shape, "hidden_size": 999}, channels={0: [1]}))
    with pytest.raises(ShoestringError, match="outside 0..63"):
        apply_plan(model, PruningPlan(shape, channels={0: [64]}))
    with pytest.raises(ShoestringError, match="drops every layer"):
        apply_plan(model, PruningPlan(shape, drop_layers=[0, 1]))


def test_taylor_leaves_no_gradients_and_restores_flags(model):
    flags = [p.requires_grad for p in model.parameters()]
    CRITERIA["taylor"]().score(model, [random_ids(2, 8)])
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_perplexity_and_calibration_batches():
    from shoestring.models.bundled import cached_dir
    from shoestring.prune.evaluate import batches, perplexity

    tok = T.AutoTokenizer.from_pretrained(cached_dir())
    data = batches(tok, "stdlib-prose", n=4, length=16, batch_size=2)
    assert len(data) == 2 and data[0].shape == (2, 16)
    held = batches(tok, "stdlib-prose", n=2, length=16, batch_size=2, skip=4)
    assert not torch.equal(held[0], data[0])  # held-out text comes after the calibration text
    model = make_model("llama", vocab_size=len(tok)).eval()
    ppl = perplexity(model, data)
    assert 0.5 * len(tok) < ppl < 2 * len(tok)  # a random model is near uniform over the vocabulary
    with pytest.raises(ShoestringError, match="fewer than one batch"):
        batches(tok, "stdlib-prose", n=4, length=10_000_000, batch_size=2)


def test_contrast_keeps_what_the_task_needs_and_the_other_domain_does_not():
    from shoestring.prune import contrast_scores

    task = {"kv_groups": {0: torch.tensor([1.0, 1.0])}, "channels": {0: torch.tensor([4.0, 4.0, 1.0, 1.0])}}
    other = {"kv_groups": {0: torch.tensor([2.0, 0.5])}, "channels": {0: torch.tensor([4.0, 1.0, 1.0, 4.0])}}
    c = contrast_scores(task, other)
    assert int(c["kv_groups"][0].argmax()) == 1  # equally needed by the task, less by the other domain
    assert c["channels"][0].argsort(descending=True).tolist()[:2] == [1, 0]
    assert int(c["channels"][0].argmin()) == 3  # the other domain's channel goes first


@pytest.mark.parametrize("angular, idle", [(False, 2), (True, 2), (False, 3)])
def test_block_influence_finds_a_layer_that_does_nothing(angular, idle):
    from shoestring.prune.importance import BlockInfluence, layers_to_drop

    model = make_model("llama", num_hidden_layers=4).eval()
    with torch.no_grad():  # this layer adds nothing to the residual stream: an identity (the last one too,
        model.model.layers[idle].self_attn.o_proj.weight.zero_()  # whose output HF returns after the final norm)
        model.model.layers[idle].mlp.down_proj.weight.zero_()
    s = BlockInfluence(angular=angular).score(model, [random_ids(2, 12)])
    assert s["layers"].shape == (4,) and float(s["layers"][idle]) == pytest.approx(0.0, abs=1e-3)
    assert layers_to_drop(s, 1) == [idle]
    with pytest.raises(ShoestringError, match="cannot drop 4 of 4"):
        layers_to_drop(s, 4)


def test_ablation_of_a_dead_structure_changes_nothing(model):
    from shoestring.prune.importance import Ablation

    d = model.config.head_dim if getattr(model.config, "head_dim", None) else 8
    r = model.config.num_attention_heads // model.config.num_key_value_heads
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[:, 7] = 0  # channel 7 of layer 1 writes nothing
        model.model.layers[0].self_attn.o_proj.weight[:, group_rows([1], d, r)] = 0  # nor does group 1 of layer 0
    s = Ablation(channel_blocks=64).score(model, [random_ids(2, 10)])
    assert abs(float(s["channels"][1][7])) < 1e-6
    assert abs(float(s["kv_groups"][0][1])) < 1e-6
    assert float(s["channels"][1].abs().max()) > 1e-5  # the live channels do change the loss
    coarse = Ablation(channel_blocks=4).score(model, [random_ids(2, 10)])
    assert torch.equal(coarse["channels"][0][:16], coarse["channels"][0][:1].expand(16))  # one score per block


def test_skipping_layers_is_an_intervention_that_always_restores():
    from shoestring.prune.skip import SkipLayers

    model = make_model("llama", num_hidden_layers=3).eval()
    ids = random_ids(1, 6)
    with torch.no_grad():
        base = model(input_ids=ids).logits
        with SkipLayers(model, [2]):
            skipped = model(input_ids=ids).logits
            out = model.generate(ids, max_new_tokens=3, do_sample=False)  # the cache copes with the gap
        assert out.shape[1] == 9
        assert not torch.allclose(skipped, base)
        assert torch.equal(model(input_ids=ids).logits, base)  # restored
        assert "forward" not in model.model.layers[2].__dict__
        with torch.no_grad():  # an identity layer: skipping it changes nothing
            model.model.layers[1].self_attn.o_proj.weight.zero_()
            model.model.layers[1].mlp.down_proj.weight.zero_()
        ref = model(input_ids=ids).logits
        with SkipLayers(model, [1]):
            torch.testing.assert_close(model(input_ids=ids).logits, ref, atol=1e-6, rtol=1e-5)
    for layers, words in (([0], "layer 0 cannot be skipped"), ([5], "outside 0..2")):
        with pytest.raises(ShoestringError, match=words):
            with SkipLayers(model, layers):
                pass


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_sparsity_zeroes_the_requested_share_in_the_requested_pattern(model, pattern):
    from shoestring.prune.sparsity import sparsify

    got = sparsify(model, 0.5, pattern, batches=[random_ids(2, 8)])
    assert got["zeroed"] == got["of"] // 2
    W = model.model.layers[1].mlp.down_proj.weight
    if pattern == "2:4":
        assert ((W.view(W.shape[0], -1, 4) != 0).sum(-1) <= 2).all()
    else:
        assert ((W == 0).sum(1) == W.shape[1] // 2).all()  # half of every output row
    with pytest.raises(ShoestringError, match="keeps 4 of 4"):
        sparsify(model, 0.5, "4:4")
    with pytest.raises(ShoestringError, match="outside"):
        sparsify(model, 1.0)
