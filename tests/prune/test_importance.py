"""Importance criteria against references: the memory-lean Taylor (gradients reduced as backward produces them,
blocks recomputed) equals the plain accumulation of ``|w * grad|``; attention entropy finds a head that
attends uniformly; a criterion without channel scores refuses a channel ratio in one line."""

from __future__ import annotations

import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.prune import CRITERIA, plan_from_scores
from shoestring.prune.importance import AttentionEntropy, Taylor
from shoestring.prune.surgery import group_rows
from tiny_models import make_model, random_ids


def reference_taylor(model, batches):
    """``sum_batches |w * dL/dw|`` per weight, from full gradients, summed per row / column."""
    parts = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    out = {}
    for i, b in enumerate(model.model.layers):
        for name in parts:
            out[(i, name)] = 0
    for ids in batches:
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        for i, b in enumerate(model.model.layers):
            for name in parts:
                mod = getattr(b.self_attn if name[0] in "qkvo" else b.mlp, name)
                dim = 0 if name in ("o_proj", "down_proj") else 1
                out[(i, name)] = out[(i, name)] + (mod.weight * mod.weight.grad).abs().sum(dim)
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("recompute", [True, False])
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_lean_taylor_equals_the_full_gradient_reference(family, recompute):
    model = make_model(family, **({"num_hidden_layers": 3} if family == "llama" else {})).eval()
    data = [random_ids(2, 12, seed=1), random_ids(2, 12, seed=2)]
    got = Taylor(recompute=recompute).score(model, data)
    ref = reference_taylor(model, data)
    c = model.config
    G, d = c.num_key_value_heads, getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    r = c.num_attention_heads // G
    for i in range(len(model.model.layers)):
        want_ch = ref[(i, "gate_proj")] + ref[(i, "up_proj")] + ref[(i, "down_proj")]
        torch.testing.assert_close(got["channels"][i], want_ch, rtol=1e-4, atol=1e-7)
        want_g = torch.stack([sum(ref[(i, n)][group_rows([g], d, r if n in ("q_proj", "o_proj") else 1)].sum()
                                  for n in ("q_proj", "k_proj", "v_proj", "o_proj")) for g in range(G)])
        torch.testing.assert_close(got["kv_groups"][i], want_g, rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())
    assert all(not hasattr(b, "forward") or "forward" not in vars(b) for b in model.model.layers)


def test_attention_entropy_finds_the_head_that_attends_uniformly():
    model = make_model("llama", num_hidden_layers=2).eval()
    c = model.config
    G, d = c.num_key_value_heads, getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    r = c.num_attention_heads // G
    with torch.no_grad():  # the query rows of group 1 in layer 0 are zero: every score 0, attention uniform
        model.model.layers[0].self_attn.q_proj.weight[group_rows([1], d, r)] = 0
        for p in model.model.layers[0].self_attn.q_proj.weight, model.model.layers[0].self_attn.k_proj.weight:
            p.mul_(8)  # the other heads get sharp patterns
    s = AttentionEntropy().score(model, [random_ids(2, 16)])
    heads = s["heads"][0].view(G, r)
    assert torch.allclose(heads[1], torch.zeros(r), atol=1e-5)  # uniform rows: entropy = log(keys), focus 0
    assert float(heads[0].min()) > 0.05 and float(s["heads"][0].max()) <= 1.0
    assert int(s["kv_groups"][0].argmin()) == 1
    assert "entropy" in CRITERIA
    with pytest.raises(ShoestringError, match="no channels scores"):
        plan_from_scores(model, s, head_ratio=0.5, channel_ratio=0.25)
    plan = plan_from_scores(model, s, head_ratio=0.5)
    assert 1 not in plan.kv_groups[0]
