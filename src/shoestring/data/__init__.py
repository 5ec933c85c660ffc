"""Corpora and packing: load text from files, tables, datasets or offline built-ins; tokenise; pack into contexts.

>>> from shoestring.data import load_corpus, pack, split
>>> corpus = load_corpus("stdlib-prose", limit_docs=20)  # doctest: +SKIP
>>> train, val = split(corpus, val_fraction=0.1, seed=0)  # doctest: +SKIP
>>> for ctx in pack(train, tokenizer, context_length=128):  # doctest: +SKIP
...     ctx.tokens, ctx.doc_ids, ctx.positions  # [128] each
"""

from .builtins import BUILTINS, BuiltinInfo, list_builtins
from .corpus import Corpus, Document
from .load import load_corpus
from .pack import Packed, PackedBatch, pack, pack_batches
from .split import split

__all__ = ["BUILTINS", "BuiltinInfo", "Corpus", "Document", "Packed", "PackedBatch", "list_builtins",
           "load_corpus", "pack", "pack_batches", "split"]
