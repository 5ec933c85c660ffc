"""Hooks inside generate: prefill then one call per decode step; padding does not leak."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_lm, no_hooks_left, tiny_tokenizer

import shoestring

NAME = "blocks.1.hook_resid_post"


def _gen(lm, ids, mask=None, n=5):
    mask = torch.ones_like(ids) if mask is None else mask
    with torch.no_grad():
        return lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, pad_token_id=1)


@pytest.fixture
def gen_lm():
    return make_lm("llama", pad_token_id=1)


def test_capture_in_generate_counts_calls(gen_lm):
    lm = gen_lm
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with lm.capture([NAME, "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_rot_k"]) as acts:
        out = _gen(lm, ids, n=5)
    assert out.shape == (1, 11)
    calls = acts.calls(NAME)
    # 1 prefill (6 positions) + 4 decode steps: the 5th new token is produced but never fed back
    assert [c.shape[1] for c in calls] == [6, 1, 1, 1, 1]
    assert acts[NAME].shape == (1, 6 + 5 - 1, 32)
    # the pattern grows along keys, one call at a time
    pats = acts.calls("blocks.0.attn.hook_pattern")
    assert [tuple(p.shape[-2:]) for p in pats] == [(6, 6), (1, 7), (1, 8), (1, 9), (1, 10)]
    for p in pats:
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    # rot_k holds only each call's new keys: joined, it equals one forward over the fed tokens
    fed = out[:, :-1]
    with torch.no_grad(), lm.capture([NAME, "blocks.0.attn.hook_rot_k"]) as full:
        lm.model(input_ids=fed)
    torch.testing.assert_close(acts["blocks.0.attn.hook_rot_k"], full["blocks.0.attn.hook_rot_k"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(acts[NAME], full[NAME], rtol=1e-5, atol=1e-5)
    assert no_hooks_left(lm.model) == []


def test_edits_apply_at_every_decode_step(gen_lm):
    lm = gen_lm
    ids = torch.tensor([[5, 6, 7, 8]])
    seen = []

    def edit(act, ctx):
        seen.append((ctx.call, act.shape[1]))
        return act + 10.0

    with lm.edit({NAME: edit}), lm.capture([NAME, "blocks.1.hook_resid_pre"]) as acts:
        out = _gen(lm, ids, n=4)
    assert seen == [(0, 4), (1, 1), (2, 1), (3, 1)]
    torch.testing.assert_close(acts[NAME] - 10.0, _resid_post_plain(lm, out[:, :-1]), rtol=1e-4, atol=1e-4)


def _resid_post_plain(lm, ids):
    """What resid_post would be, before the +10, given the same fed tokens (resid_pre is unaffected)."""
    with torch.no_grad(), lm.capture(NAME) as acts:
        lm.model(input_ids=ids)
    return acts[NAME]


def test_steering_changes_generation(gen_lm):
    lm = gen_lm
    ids = torch.tensor([[5, 6, 7, 8]])
    plain = _gen(lm, ids, n=6)
    v = torch.randn(32, generator=torch.Generator().manual_seed(0)) * 50
    with lm.edit({"blocks.0.hook_resid_post": v}):
        steered = _gen(lm, ids, n=6)
    again = _gen(lm, ids, n=6)
    assert not torch.equal(plain, steered)
    assert torch.equal(plain, again)  # the steering is gone after the block


def test_left_padding_does_not_leak(gen_lm):
    lm = gen_lm
    long, short = [5, 6, 7, 8, 9, 10], [11, 12, 13]
    batch = torch.tensor([long, [1, 1, 1] + short])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    with lm.capture(NAME) as both:
        out_b = _gen(lm, batch, mask, n=4)
    with lm.capture(NAME) as alone:
        out_a = _gen(lm, torch.tensor([short]), n=4)
    assert torch.equal(out_b[1, 3:], out_a[0])
    assert both[NAME].shape == (2, 6 + 3, 32) and alone[NAME].shape == (1, 3 + 3, 32)
    torch.testing.assert_close(both[NAME][1, 3:], alone[NAME][0], rtol=0, atol=1e-5)


def test_lm_generate_and_tokenize_with_a_tokenizer():
    tok = tiny_tokenizer()
    model = make_lm("llama").model
    lm = shoestring.load(model, tokenizer=tok, check=False)
    assert tok.pad_token == tok.eos_token  # set by LM when missing
    side = tok.padding_side
    enc = lm.tokenize(["w5 w6 w7", "w9"])
    assert enc["input_ids"].tolist()[1][:2] == [tok.pad_token_id] * 2  # left padding by default
    assert enc["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert tok.padding_side == side  # restored after tokenize
    right = lm.tokenize(["w5 w6 w7", "w9"], padding_side="right")
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    texts = lm.generate(["w5 w6 w7", "w9"], max_new_tokens=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    # the batched result equals generating each prompt alone (left padding is handled)
    single = lm.generate("w9", max_new_tokens=3)
    assert texts[1] == single[0]
    logits = lm.forward("w5 w6")
    assert logits.shape == (1, 2, 100)
    torch.testing.assert_close(logits, lm(torch.tensor([[5, 6]])))


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3_text", "phi3"])
def test_decode_step_patterns_match_eager_with_left_padding(family):
    """Each decode step's pattern (sdpa model, tapped) equals the matching row of an eager forward."""
    from tiny_models import make_model

    lm = make_lm(family, "sdpa", pad_token_id=1)
    eager = make_model(family, "eager", pad_token_id=1)
    eager.load_state_dict(lm.model.state_dict())
    batch = torch.tensor([[5, 6, 7, 8, 9, 10], [1, 1, 1, 11, 12, 13]])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    name = "blocks.1.attn.hook_pattern"
    with lm.capture(name) as acts:
        out = _gen(lm, batch, mask, n=4)
    fed = out[:, :-1]
    full_mask = torch.cat([mask, torch.ones(2, 3, dtype=mask.dtype)], 1)
    position_ids = (full_mask.cumsum(1) - 1).clamp(min=0)  # as generate computes them
    with torch.no_grad():
        ref = eager(input_ids=fed, attention_mask=full_mask, position_ids=position_ids, output_attentions=True)
    pats = acts.calls(name)
    assert len(pats) == 4
    torch.testing.assert_close(pats[0][0], ref.attentions[1][0, :, :6, :6], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pats[0][1, :, 3:], ref.attentions[1][1, :, 3:6, :6], rtol=1e-5, atol=1e-6)
    for k, p in enumerate(pats[1:]):
        q = 6 + k
        assert p.shape == (2, 4, 1, q + 1)
        torch.testing.assert_close(p, ref.attentions[1][:, :, q:q + 1, :q + 1], rtol=1e-5, atol=1e-6)
        assert torch.all(p[1, ..., :3] == 0)  # padding gets no attention
