"""Passkey prompts: exact length, the key stated once at the asked depth, scoring, bad input."""

from __future__ import annotations

import pytest

from cli_helpers import tiny_smol_dir

from shoestring.errors import ShoestringError
from shoestring.kv.tasks import passkey_cases, score_passkey

FILLER = " ".join(f"Sentence number {i} talks about the weather and the garden." for i in range(400))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    import transformers as T

    return T.AutoTokenizer.from_pretrained(tiny_smol_dir(tmp_path_factory.mktemp("kv-tok")))


def test_cases_have_the_length_and_the_key_where_asked(tok):
    cases = passkey_cases(tok, FILLER, [300, 600], [0.0, 0.5, 1.0], seed=3)
    assert [(c.length, c.depth) for c in cases] == [(L, d) for L in (300, 600) for d in (0.0, 0.5, 1.0)]
    for c in cases:
        assert c.ids.shape == (1, c.length)
        text = tok.decode(c.ids[0])
        assert text.count(c.key) == 2 and text.endswith("The pass key is")
        where = text.index(c.key) / len(text)
        assert abs(where - c.depth) < 0.15
    again = passkey_cases(tok, FILLER, [300, 600], [0.0, 0.5, 1.0], seed=3)
    assert [c.key for c in again] == [c.key for c in cases]


def test_scoring_and_bad_input(tok):
    assert score_passkey(" 12345. Yes", "12345") == 1.0 and score_passkey(" 1234", "12345") == 0.0
    assert score_passkey(" no idea", "12345") == 0.0
    with pytest.raises(ShoestringError, match="outside 0..1"):
        passkey_cases(tok, FILLER, [300], [1.5])
    with pytest.raises(ShoestringError, match="filler tokens"):
        passkey_cases(tok, "too short", [300], [0.5])
