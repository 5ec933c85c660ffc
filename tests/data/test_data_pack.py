"""Packing invariants on the real SmolLM2 tokenizer: lengths, BOS, doc ids and positions, nothing lost, resume."""

from __future__ import annotations

import pytest
import torch

pytest_plugins = ["data_fixtures"]  # fixtures: tok, texts, text_dir, jsonl_file

from shoestring.data import load_corpus, pack, pack_batches
from shoestring.data.pack import INSERTED, PAD


@pytest.fixture
def corpus(text_dir):
    return load_corpus(str(text_dir))


def framed_stream(corpus, tok, sep):
    """The expected stream, one document at a time (no batching): tokens, doc ids, positions."""
    toks, ids, pos = [], [], []
    for d in corpus:
        t = tok(d.text, add_special_tokens=False)["input_ids"]
        t = [tok.bos_token_id, *t] if sep == "bos" else [*t, tok.eos_token_id] if sep == "eos" else t
        toks += t
        ids += [d.id] * len(t)
        pos += list(range(len(t)))
    return toks, ids, pos


def unpacked(contexts):
    """Contexts concatenated, without inserted BOS and padding."""
    keep = [c.doc_ids >= 0 for c in contexts]
    return tuple(torch.cat([getattr(c, name)[k] for c, k in zip(contexts, keep)]).tolist()
                 for name in ("tokens", "doc_ids", "positions"))


@pytest.mark.parametrize("sep", ["eos", "bos", None])
@pytest.mark.parametrize("add_bos", [True, False])
@pytest.mark.parametrize("T", [7, 32])
def test_contexts_reproduce_the_stream(corpus, tok, sep, add_bos, T):
    contexts = list(pack(corpus, tok, T, add_bos=add_bos, sep=sep, drop_last=False, batch_docs=2))
    stream = framed_stream(corpus, tok, sep)
    assert unpacked(contexts) == stream  # nothing lost, nothing repeated, ids and positions agree
    for i, c in enumerate(contexts):
        assert c.index == i and c.tokens.shape == c.doc_ids.shape == c.positions.shape == (T,)
        assert c.tokens.dtype == torch.long
        if add_bos:
            assert c.tokens[0] == tok.bos_token_id
        inserted = c.doc_ids == INSERTED
        assert inserted.sum() <= 1 and (not inserted.any() or inserted[0])
        assert (c.positions[inserted] == -1).all()
    pad = contexts[-1].doc_ids == PAD
    assert (pad.int().diff() >= 0).all()  # padding only at the end of the last context
    assert not any((c.doc_ids == PAD).any() for c in contexts[:-1])


def test_drop_last_drops_only_the_partial_context(corpus, tok):
    full = list(pack(corpus, tok, 16, drop_last=False))
    dropped = list(pack(corpus, tok, 16))
    assert len(dropped) == len(full) - 1 and (full[-1].doc_ids == PAD).any()
    assert all(torch.equal(a.tokens, b.tokens) for a, b in zip(full, dropped))
    assert not any((c.doc_ids == PAD).any() for c in dropped)


def test_separator_and_positions_within_documents(corpus, tok):
    contexts = list(pack(corpus, tok, 64, add_bos=False, sep="eos", drop_last=False))
    toks, ids, _ = unpacked(contexts)
    ends = [i for i in range(len(ids)) if i + 1 == len(ids) or ids[i + 1] != ids[i]]
    assert all(toks[i] == tok.eos_token_id for i in ends)  # every document ends with EOS
    assert sorted(set(ids)) == [d.id for d in corpus]


@pytest.mark.parametrize("skip", [0, 1, 5, 13])
def test_resume_with_skip_contexts_is_the_tail(corpus, tok, skip):
    full = list(pack(corpus, tok, 9, sep="bos", batch_docs=3))
    resumed = list(pack(corpus, tok, 9, sep="bos", batch_docs=3, skip_contexts=skip))
    assert len(resumed) == max(0, len(full) - skip)
    for a, b in zip(full[skip:], resumed):
        assert a.index == b.index
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.doc_ids, b.doc_ids)
        assert torch.equal(a.positions, b.positions)


def test_deterministic_and_independent_of_batch_docs(corpus, tok):
    runs = [list(pack(corpus, tok, 11, batch_docs=b)) for b in (1, 4, 64, 64)]
    for run in runs[1:]:
        assert len(run) == len(runs[0])
        assert all(torch.equal(a.tokens, b.tokens) and torch.equal(a.positions, b.positions)
                   for a, b in zip(runs[0], run))


def test_pack_batches(corpus, tok):
    contexts = list(pack(corpus, tok, 8, drop_last=False))
    batches = list(pack_batches(corpus, tok, 8, batch_size=3, drop_last=False))
    assert [b.index for b in batches] == list(range(0, len(contexts), 3))
    assert batches[0].tokens.shape == (3, 8) and batches[0].doc_ids.shape == batches[0].positions.shape == (3, 8)
    assert torch.equal(torch.cat([b.tokens for b in batches]), torch.stack([c.tokens for c in contexts]))
    whole = list(pack_batches(corpus, tok, 8, batch_size=3))
    assert all(b.tokens.shape == (3, 8) for b in whole) and len(whole) == (len(contexts) - 1) // 3
    resumed = list(pack_batches(corpus, tok, 8, batch_size=3, skip_contexts=3))
    assert torch.equal(resumed[0].tokens, whole[1].tokens)


def test_tokenizer_without_bos_gets_no_bos(corpus):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for d in corpus for w in d.text.split()})
    vocab = {"<eos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")
    assert tok.bos_token_id is None
    contexts = list(pack(corpus, tok, 8, add_bos=True, drop_last=False))
    assert not any((c.doc_ids == INSERTED).any() for c in contexts)
    assert unpacked(contexts) == framed_stream(corpus, tok, "eos")


def test_stdlib_code_packs_fast(tok):
    corpus = load_corpus("stdlib-code", limit_docs=20)
    contexts = list(pack(corpus, tok, 256))
    assert len(contexts) > 50 and all(c.tokens[0] == tok.bos_token_id for c in contexts)


def test_packing_after_a_padded_tokenizer_call(tok):
    """A padded HF call leaves padding on in the shared Rust backend; packing must not inherit it (it once
    turned every document into padding) and must leave the tokenizer as it found it."""
    from shoestring.data import Corpus, Document
    from shoestring.data.pack import pack

    docs = [Document(0, "Hi.", "a"), Document(1, "The assert statement is a convenient way to insert debugging checks.", "b")]
    corpus = Corpus("t", lambda: iter(docs))
    clean = [c.tokens.tolist() for c in pack(corpus, tok, 8)]
    side = tok.padding_side
    tok.padding_side = "left"
    tok(["a b c", "d"], padding=True)
    tok.padding_side = side
    before = tok.backend_tokenizer.padding
    assert before is not None
    assert [c.tokens.tolist() for c in pack(corpus, tok, 8)] == clean
    assert tok.backend_tokenizer.padding == before
