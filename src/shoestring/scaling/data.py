"""Training data for the small GPT: a tokenizer, the corpus as one token stream, a fixed held-out split,
and deterministic batches.

- Tokenizer: a byte-level BPE trained on the corpus itself with ``tokenizers`` (256-4096 tokens fit models
  this small; a GPT-2-sized vocabulary would make the output layer most of the compute), or any
  ``tokenizer.json`` / tokenizer folder the user has (e.g. the GPT-2 vocabulary, ../shared/OFFLINE_ASSETS.md).
- The stream and the tokenizer are cached under ``$SHOESTRING_HOME/scaling/`` by a hash of what made them,
  so every run of a grid reads the same tokens.
- Held-out split: the stream is cut into blocks of 4,096 tokens and every 20th block is held out (spread
  over the whole corpus, fixed for every run). Evaluation reads the first ``eval_tokens`` of it.
- Batches: the offsets of step ``s`` come from ``numpy.random.default_rng([seed, s])``, so the data order
  depends only on the seed, and a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ShoestringError
from ..runs.atomic import atomic_path, write_json

BLOCK, HOLD_EVERY = 4096, 20
EOT = "<|endoftext|>"


def cache_dir() -> Path:
    from ..models.bundled import home

    return home() / "scaling"


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _texts(corpus: str, max_chars: int | None):
    from ..data import load_corpus

    n = 0
    for doc in load_corpus(corpus):
        yield doc.text
        n += len(doc.text)
        if max_chars and n >= max_chars:
            return


def load_tokenizer(spec: str, corpus: str, vocab_size: int, max_chars: int | None = None):
    """``spec="bpe"``: a byte-level BPE of ``vocab_size`` trained on (the first ``max_chars`` of) ``corpus``,
    cached; otherwise a path to a ``tokenizer.json`` or a folder holding one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if spec != "bpe":
        path = Path(spec)
        path = path / "tokenizer.json" if path.is_dir() else path
        if not path.is_file():
            raise ShoestringError(f"tokenizer '{spec}' not found", "pass --tokenizer bpe or a tokenizer.json / its folder")
        return Tokenizer.from_file(str(path))
    if not 257 <= vocab_size <= 65535:
        raise ShoestringError(f"vocab size {vocab_size} is outside 257..65535",
                              "a byte-level BPE needs the 256 bytes + <|endoftext|>; 512-4096 suits small models")
    path = cache_dir() / f"bpe-{_key(corpus, vocab_size, max_chars)}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_texts(corpus, max_chars), trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tok.save(str(tmp))
    return tok


@dataclass
class TokenData:
    """The corpus as tokens: ``train`` and ``heldout`` (1-D int arrays) and the vocabulary size."""

    train: np.ndarray
    heldout: np.ndarray
    vocab_size: int
    source: dict

    def check(self, context: int, batch_size: int, eval_tokens: int) -> None:
        if len(self.train) < max(batch_size * (context + 1), context + 2):
            raise ShoestringError(f"the corpus has {len(self.train):,} training tokens, fewer than one batch "
                                  f"({batch_size} x {context + 1})", "use a larger corpus or a smaller --batch-size / --context")
        if len(self.heldout) < context + 1:
            raise ShoestringError(f"the held-out split has {len(self.heldout):,} tokens, fewer than one context ({context + 1})",
                                  "use a larger corpus")

    def batch(self, seed: int, step: int, batch_size: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of ``step`` for ``seed``: ``(inputs[B, T], targets[B, T])``."""
        rng = np.random.default_rng([seed, step])
        starts = rng.integers(0, len(self.train) - context - 1, batch_size)
        rows = np.stack([self.train[s: s + context + 1] for s in starts]).astype(np.int64)
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]

    def eval_batches(self, context: int, eval_tokens: int, batch_size: int):
        """The fixed held-out set: consecutive non-overlapping windows from its start, ``eval_tokens`` in all."""
        n = max(1, min(eval_tokens // context, (len(self.heldout) - 1) // context))
        rows = np.stack([self.heldout[i * context: i * context + context + 1] for i in range(n)]).astype(np.int64)
        t = torch.from_numpy(rows)
        for i in range(0, n, batch_size):
            yield t[i: i + batch_size, :-1], t[i: i + batch_size, 1:]


def token_data(corpus: str, tokenizer: str = "bpe", vocab_size: int = 1024, max_chars: int | None = None) -> TokenData:
    """Tokenise ``corpus`` (cached) and split it; see the module docstring."""
    tok = load_tokenizer(tokenizer, corpus, vocab_size, max_chars)
    V = tok.get_vocab_size()
    key = _key(corpus, tokenizer, vocab_size, max_chars, tok.to_str() if tokenizer != "bpe" else "")
    path = cache_dir() / f"tokens-{key}.npy"
    if path.is_file():
        stream = np.load(path)
    else:
        end = [] if tok.token_to_id(EOT) is None else [tok.token_to_id(EOT)]
        texts, ids = list(_texts(corpus, max_chars)), []
        for i in range(0, len(texts), 64):  # each document, then <|endoftext|>
            for enc in tok.encode_batch(texts[i: i + 64]):
                ids += enc.ids + end
        if not ids:
            raise ShoestringError(f"corpus '{corpus}' has no text", "point --corpus at a folder or file with text")
        stream = np.asarray(ids, dtype=np.uint16 if V <= 65535 else np.int32)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, stream)
        write_json(path.with_suffix(".json"), {"corpus": corpus, "tokenizer": tokenizer, "vocab_size": V,
                                                "max_chars": max_chars, "tokens": int(len(stream))})
    blocks = np.arange(len(stream)) // BLOCK
    held = blocks % HOLD_EVERY == HOLD_EVERY - 1
    return TokenData(stream[~held], stream[held], V, {"corpus": corpus, "tokenizer": tokenizer, "vocab_size": V,
                                                       "tokens": int(len(stream)), "max_chars": max_chars})
