"""Multi-key retrieval prompts and the LongBench / RULER loaders: exact lengths, the asked key where asked,
distractors present, the benchmarks' metrics, and one clear error for a bad file."""

from __future__ import annotations

import json

import pytest

from cli_helpers import tiny_smol_dir

from shoestring.errors import ShoestringError
from shoestring.kv.tasks import load_longbench, load_ruler, multikey_cases, score_multikey, score_text, token_f1

FILLER = " ".join(f"Sentence number {i} talks about the weather and the garden." for i in range(400))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    import transformers as T

    return T.AutoTokenizer.from_pretrained(tiny_smol_dir(tmp_path_factory.mktemp("kv-tok2")))


def test_multikey_cases(tok):
    cases = multikey_cases(tok, FILLER, [300, 500], [0.0, 0.5, 1.0], keys=3, seed=1)
    assert [(c.length, c.depth) for c in cases] == [(L, d) for L in (300, 500) for d in (0.0, 0.5, 1.0)]
    for c in cases:
        assert c.ids.shape == (1, c.length)
        text = tok.decode(c.ids[0])
        assert text.count("special magic number for") == 5  # 3 needles + twice in the question
        assert text.count(c.key) == 1 and text.endswith(f"The special magic number for {c.word} is")
        assert abs(text.index(c.key) / len(text) - c.depth) < 0.2
    assert score_multikey(f" {cases[0].key}.", cases[0].key) == 1.0 and score_multikey(" 1", cases[0].key) == 0.0
    with pytest.raises(ShoestringError, match="keys per prompt"):
        multikey_cases(tok, FILLER, [300], [0.5], keys=0)


def test_longbench_and_ruler_loaders(tok, tmp_path):
    lb = tmp_path / "qa.jsonl"
    lb.write_text("\n".join(json.dumps(r) for r in [
        {"context": "Ann lives in Paris. " * 50, "input": "Where does Ann live?", "answers": ["Paris"]},
        {"context": "Bo is 7.", "input": "How old is Bo?", "answers": ["7", "seven"]}]))
    cases = load_longbench(lb, tok, max_tokens=64)
    assert len(cases) == 2 and cases[0].length == 64 and cases[1].length < 64
    assert tok.decode(cases[0].ids[0]).endswith("Answer:")  # the tail (the question) survives truncation
    assert score_text(" Paris, France", cases[0]) == pytest.approx(token_f1("Paris, France", "Paris"))
    assert score_text(" seven", cases[1]) == 1.0 and score_text(" eight", cases[1]) == 0.0
    ru = tmp_path / "ruler.jsonl"
    ru.write_text(json.dumps({"input": "keys: 1 2", "outputs": ["123", "456"]}) + "\n")
    (case,) = load_ruler(ru, tok)
    assert score_text("123 and 456", case) == 1.0 and score_text("only 123", case) == 0.5


def test_bad_files_are_one_clear_error(tok, tmp_path):
    with pytest.raises(ShoestringError, match="no such file"):
        load_ruler(tmp_path / "missing.jsonl", tok)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    with pytest.raises(ShoestringError, match="bad.jsonl:1 is not valid JSON"):
        load_longbench(bad, tok)
    bad.write_text(json.dumps({"context": "x"}) + "\n")
    with pytest.raises(ShoestringError, match="has no input, answers"):
        load_longbench(bad, tok)


def test_recall_cases_quote_a_sentence_of_the_context(tok):
    from shoestring.kv.tasks import recall_cases, score_recall

    prose = " ".join(f"Mary walked to the old mill number {i} and saw the miller grinding wheat." for i in range(300))
    cases = recall_cases(tok, prose, [256, 512], [0.1, 0.9], opening=5, answer=6, seed=2)
    for c in cases:
        text = tok.decode(c.ids[0])
        assert c.ids.shape[1] <= c.length and c.ids.shape[1] >= c.length - 8
        opening = text.rsplit('begins "', 1)[1].split('"')[0]
        body = text.rsplit("\n\nIn the text above", 1)[0]
        assert f"{opening} {c.answers[0]}" in body  # the answer is the quoted sentence's true continuation
        assert score_recall(" " + c.answers[0], c) == 1.0 and score_recall(" nothing alike", c) == 0.0
    early, late = cases[0], cases[1]
    assert text.count("\n\nIn the text above") == 1 and early.depth < late.depth
    with pytest.raises(ShoestringError, match="no sentence"):
        recall_cases(tok, "x = 1\n" * 2000, [256], [0.5])
