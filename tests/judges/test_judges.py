"""Judges: each scores what it says, in the registry, with one-line errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from steer_helpers import smol_lm  # noqa: F401

from shoestring.errors import ShoestringError
from shoestring.judges import JUDGES, make_judge


def test_registry_and_unknown_judge():
    assert {"sentiment", "fluency", "logprob", "refusal", "regex", "exact_match", "llm"} <= set(JUDGES)
    with pytest.raises(ShoestringError, match="unknown judge 'sentimnet'.*did you mean sentiment"):
        make_judge("sentimnet")


def test_sentiment_is_vader_compound():
    pos, neg, flat = make_judge("sentiment")(["What a wonderful, lovely day!", "This is awful and I hate it.", "The table is brown."])
    assert pos > 0.5 and neg < -0.5 and abs(flat) < 0.1


def test_text_judges():
    assert make_judge("refusal")(["I'm sorry, but I can't help with that.", "Sure, here it is."]) == [1.0, 0.0]
    assert make_judge("regex", keywords=("good", "great"))(["a Great day", "goodness"]) == [1.0, 0.0]
    assert make_judge("regex", pattern=r"\d{4}")(["in 1984", "in May"]) == [1.0, 0.0]
    assert make_judge("exact_match", answers=("Paris", "Rome"))([" paris, of course", "Milan"]) == [1.0, 0.0]
    with pytest.raises(ShoestringError, match="bad regular expression"):
        make_judge("regex", pattern="(")
    with pytest.raises(ShoestringError, match="2 outputs but 1 expected"):
        make_judge("exact_match", answers=("a",))(["a", "b"])


def _nll(lm, prompt, output):
    tok = lm.tokenizer
    p, o = tok(prompt)["input_ids"], tok(output, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + o])
    logp = F.log_softmax(lm.model(input_ids=ids).logits[0].float(), -1)
    return -float(torch.stack([logp[len(p) - 1 + j, t] for j, t in enumerate(o)]).mean())


def test_perplexity_matches_a_manual_computation(smol_lm):
    judge = make_judge("fluency", lm=smol_lm)
    prompts, outputs = ["The cat", "A much longer prompt here"], [" sat on the mat", " ok"]
    with torch.no_grad():
        expect = [_nll(smol_lm, p, o) for p, o in zip(prompts, outputs)]
    got = judge(outputs, prompts)
    assert got == pytest.approx([-e for e in expect], abs=1e-4)
    assert judge.perplexities(outputs, prompts) == pytest.approx([math.exp(e) for e in expect], rel=1e-4)


def test_logprob_and_llm_judge(smol_lm):
    lp = make_judge("logprob", lm=smol_lm, targets=(" good", " bad"))
    with torch.no_grad():
        a, b = -_nll(smol_lm, "It was", " good"), -_nll(smol_lm, "It was", " bad")
    n_good = len(smol_lm.tokenizer(" good", add_special_tokens=False)["input_ids"])
    n_bad = len(smol_lm.tokenizer(" bad", add_special_tokens=False)["input_ids"])
    assert lp(["x"], ["It was"])[0] == pytest.approx(max(a * n_good, b * n_bad), abs=1e-3)
    p = make_judge("llm", lm=smol_lm)(["I love it", "I hate it"])
    assert all(0.0 <= v <= 1.0 for v in p) and p[0] != p[1]
    with pytest.raises(ShoestringError, match="needs a model"):
        make_judge("llm")(["x"])
