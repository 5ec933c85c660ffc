"""Training data for the small GPT: the byte-level BPE, the cached token stream, the fixed held-out split and
deterministic batches. ``$SHOESTRING_HOME`` points into each test's tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import shoestring.scaling.data as data_mod
from shoestring.errors import ShoestringError
from shoestring.scaling.data import BLOCK, EOT, HOLD_EVERY, TokenData, load_tokenizer, token_data


CORPUS, VOCAB, CHARS = "stdlib-prose", 300, 300_000  # ~230k tokens: enough for held-out blocks, trains in < 1 s


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SHOESTRING_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "scaling"


def test_bpe_round_trips_text_and_respects_the_vocabulary(home):
    tok = load_tokenizer("bpe", CORPUS, VOCAB, max_chars=CHARS)
    assert tok.get_vocab_size() == VOCAB
    assert tok.token_to_id(EOT) is not None
    for text in ("Return the absolute value of a number.", "  leading and  double  spaces\n\ttab\r\n",
                 "ünïcödé → ✓ 日本語 😀", "x" * 300, ""):
        enc = tok.encode(text)
        assert all(0 <= i < VOCAB for i in enc.ids)
        assert tok.decode(enc.ids) == text
    # merges were learned: common English compresses well below one token per byte
    prose = "The default value of the argument is used when the function is called without it."
    assert len(tok.encode(prose).ids) < 0.7 * len(prose.encode())


def test_smallest_accepted_vocabulary_is_respected_or_refused(home):
    try:
        d = token_data(CORPUS, "bpe", 256, max_chars=20_000)
    except ShoestringError:
        return  # refusing a vocabulary that cannot hold the bytes and <|endoftext|> is fine too
    assert d.vocab_size <= 256


def test_vocabulary_below_the_bytes_or_a_missing_tokenizer_is_refused(home, tmp_path):
    with pytest.raises(ShoestringError, match="vocab size 128 is outside"):
        load_tokenizer("bpe", CORPUS, 128)
    with pytest.raises(ShoestringError, match="not found"):
        load_tokenizer(str(tmp_path / "nowhere"), CORPUS, VOCAB)


def test_a_tokenizer_file_or_folder_is_loaded_as_is(home, tmp_path):
    tok = load_tokenizer("bpe", CORPUS, VOCAB, max_chars=50_000)
    (tmp_path / "tok").mkdir()
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    for spec in (tmp_path / "tok", tmp_path / "tok" / "tokenizer.json"):
        again = load_tokenizer(str(spec), CORPUS, 999)  # the vocab size is the file's, not the argument
        assert again.get_vocab_size() == VOCAB
        assert again.encode("hello world").ids == tok.encode("hello world").ids


def test_token_data_is_cached_and_not_rebuilt(home, monkeypatch):
    first = token_data(CORPUS, "bpe", VOCAB, max_chars=CHARS)
    streams = sorted(home.glob("tokens-*.npy"))
    assert len(streams) == 1 and len(list(home.glob("bpe-*.json"))) == 1
    meta = streams[0].with_suffix(".json")
    assert meta.is_file()
    stat = streams[0].stat().st_mtime_ns

    def no_corpus(*a, **k):
        raise AssertionError("the corpus was read again: the cache was not used")

    monkeypatch.setattr(data_mod, "_texts", no_corpus)
    second = token_data(CORPUS, "bpe", VOCAB, max_chars=CHARS)
    assert np.array_equal(first.train, second.train) and np.array_equal(first.heldout, second.heldout)
    assert second.vocab_size == first.vocab_size == VOCAB and second.source == first.source
    assert streams[0].stat().st_mtime_ns == stat
    # a different recipe is a different cache entry (and does read the corpus)
    with pytest.raises(AssertionError, match="cache was not used"):
        token_data(CORPUS, "bpe", VOCAB, max_chars=CHARS // 2)


def test_stream_is_compact_and_ends_documents_with_the_end_of_text_token(home):
    d = token_data(CORPUS, "bpe", VOCAB, max_chars=CHARS)
    stream = np.load(next(home.glob("tokens-*.npy")))
    assert stream.dtype == np.uint16
    assert int(stream.max()) < VOCAB
    eot = load_tokenizer("bpe", CORPUS, VOCAB, max_chars=CHARS).token_to_id(EOT)
    assert stream[-1] == eot and (stream == eot).sum() > 1  # one per document
    assert d.source["tokens"] == len(stream) == len(d.train) + len(d.heldout)


def test_held_out_blocks_are_every_20th_block_and_never_in_train(home):
    d = token_data(CORPUS, "bpe", VOCAB, max_chars=CHARS)
    stream = np.load(next(home.glob("tokens-*.npy")))
    n_blocks = -(-len(stream) // BLOCK)
    assert n_blocks >= HOLD_EVERY, "the test corpus is too small to hold anything out"
    pos = np.arange(len(stream))
    held_pos = pos[(pos // BLOCK) % HOLD_EVERY == HOLD_EVERY - 1]
    train_pos = np.setdiff1d(pos, held_pos)
    assert len(np.intersect1d(held_pos, train_pos)) == 0
    assert np.array_equal(d.heldout, stream[held_pos])
    assert np.array_equal(d.train, stream[train_pos])
    full_held = sum(1 for b in range(n_blocks) if b % HOLD_EVERY == HOLD_EVERY - 1 and (b + 1) * BLOCK <= len(stream))
    assert len(d.heldout) >= full_held * BLOCK > 0
    assert 0.03 < len(d.heldout) / len(stream) < 0.07  # about one block in 20
    # spread over the corpus and in whole blocks: the first held-out token is the first of block 19
    assert d.heldout[0] == stream[(HOLD_EVERY - 1) * BLOCK] and d.heldout[BLOCK - 1] == stream[HOLD_EVERY * BLOCK - 1]
    assert np.array_equal(d.train[: (HOLD_EVERY - 1) * BLOCK], stream[: (HOLD_EVERY - 1) * BLOCK])
    after = slice(HOLD_EVERY * BLOCK, (HOLD_EVERY + 1) * BLOCK)  # train resumes right after the held-out block
    assert np.array_equal(d.train[(HOLD_EVERY - 1) * BLOCK: HOLD_EVERY * BLOCK], stream[after])


def synthetic(n_train=5000, n_held=600, V=50) -> TokenData:
    rng = np.random.default_rng(0)
    return TokenData(rng.integers(0, V, n_train).astype(np.uint16), rng.integers(0, V, n_held).astype(np.uint16), V, {})


def test_batches_are_deterministic_per_seed_and_step():
    d = synthetic()
    x, y = d.batch(seed=0, step=3, batch_size=4, context=8)
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    windows = np.lib.stride_tricks.sliding_window_view(d.train.astype(np.int64), 9)
    for row_x, row_y in zip(x.numpy(), y.numpy()):  # each row is a contiguous window of the training stream
        assert (windows == np.r_[row_x, row_y[-1]]).all(axis=1).any()
    again = d.batch(0, 3, 4, 8)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    assert not torch.equal(x, d.batch(1, 3, 4, 8)[0])  # another seed
    assert not torch.equal(x, d.batch(0, 4, 4, 8)[0])  # another step
    # the order does not depend on what was drawn before (a resumed run sees the same batches)
    d.batch(0, 0, 4, 8)
    assert torch.equal(x, d.batch(0, 3, 4, 8)[0])


def test_a_stream_too_short_to_draw_from_is_refused_and_a_longer_one_draws():
    d = TokenData(np.arange(20, dtype=np.uint16), np.arange(40, dtype=np.uint16), 64, {})
    starts = {int(d.batch(0, s, 1, 16)[0][0, 0]) for s in range(200)}
    assert starts == {0, 1, 2}  # windows of 17 tokens starting before the last full one
    exact = TokenData(np.arange(17, dtype=np.uint16), np.arange(40, dtype=np.uint16), 64, {})
    with pytest.raises(ShoestringError, match="fewer than one batch"):
        exact.check(context=16, batch_size=1, eval_tokens=32)
    ok = TokenData(np.arange(18, dtype=np.uint16), np.arange(40, dtype=np.uint16), 64, {})
    ok.check(context=16, batch_size=1, eval_tokens=32)
    x, y = ok.batch(0, 0, 1, 16)
    assert x[0, 0] == 0 and y[0, -1] == 16


def test_eval_batches_are_fixed_consecutive_heldout_windows():
    d = synthetic(n_held=600)
    batches = list(d.eval_batches(context=8, eval_tokens=80, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]  # 80 // 8 = 10 windows
    xs = torch.cat([b[0] for b in batches])
    ys = torch.cat([b[1] for b in batches])
    for i in range(10):
        assert torch.equal(xs[i], torch.from_numpy(d.heldout[i * 8: i * 8 + 8].astype(np.int64)))
        assert torch.equal(ys[i], torch.from_numpy(d.heldout[i * 8 + 1: i * 8 + 9].astype(np.int64)))
    again = torch.cat([b[0] for b in d.eval_batches(8, 80, 4)])
    assert torch.equal(xs, again)
    # asking for more than the held-out split holds: as many whole windows as fit
    assert sum(b[0].shape[0] for b in d.eval_batches(8, 10**6, 16)) == (600 - 1) // 8


def test_check_refuses_a_corpus_smaller_than_one_batch():
    d = synthetic(n_train=100, n_held=600)
    with pytest.raises(ShoestringError, match="fewer than one batch"):
        d.check(context=16, batch_size=8, eval_tokens=256)
    d.check(context=16, batch_size=4, eval_tokens=256)  # 4 x 17 = 68 tokens fit
    short_heldout = synthetic(n_train=5000, n_held=10)
    with pytest.raises(ShoestringError, match="held-out split has 10 tokens"):
        short_heldout.check(context=16, batch_size=4, eval_tokens=256)


def test_cache_lives_under_shoestring_home(home):
    assert data_mod.cache_dir() == home
    assert os.environ["SHOESTRING_HOME"] in str(home)
