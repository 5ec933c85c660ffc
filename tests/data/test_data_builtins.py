"""The offline built-ins: stdlib-code and stdlib-prose always; bible-kjv and austen where their Debian packages are."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import zlib

import pytest

from shoestring.data import BUILTINS, list_builtins, load_corpus
from shoestring.data.builtins import austen, bible, rdata
from shoestring.errors import ShoestringError

needs_bible = pytest.mark.skipif(not bible.available(), reason=f"bible-kjv is absent; run `{bible.INSTALL}`")
needs_austen = pytest.mark.skipif(not austen.available(), reason=f"janeaustenr is absent; run `{austen.INSTALL}`")


def test_list_builtins():
    rows = {b.name: b for b in list_builtins()}
    assert set(rows) == {"stdlib-code", "stdlib-prose", "bible-kjv", "austen", "austen-books"}
    assert rows["stdlib-code"].available and rows["stdlib-prose"].available
    assert all(r.description and r.install for r in rows.values())


def test_stdlib_code():
    corpus = load_corpus("stdlib-code")
    sources = [d.source for d in corpus]
    assert sources == sorted(sources) and len(sources) > 300
    assert "stdlib-code:json/decoder.py" in sources and "stdlib-code:os.py" in sources
    assert not any("/test/" in s or "/tests/" in s or "site-packages" in s or "/test_" in s for s in sources)
    doc = next(d for d in corpus if d.source == "stdlib-code:json/decoder.py")
    assert "class JSONDecoder" in doc.text


def test_stdlib_prose():
    docs = list(load_corpus("stdlib-prose"))
    keys = [d.source.removeprefix("stdlib-prose:") for d in docs]
    assert keys == sorted(keys) and "assert" in keys and len(docs) > 50
    assert "assert" in docs[keys.index("assert")].text


@needs_bible
def test_bible_kjv_chapters():
    docs = list(load_corpus("bible-kjv"))
    assert len(docs) == 1189  # chapters of the KJV
    assert docs[0].source == "bible-kjv:Ge1" and docs[-1].source == "bible-kjv:Rev22"
    assert docs[0].text.startswith("In the beginning God created the heaven and the earth.\n")
    assert len(docs[0].text.splitlines()) == 31  # Genesis 1 has 31 verses
    assert sum(len(d.text.splitlines()) for d in docs) == 31102  # every verse, none wrapped
    psalm117 = next(d for d in docs if d.source == "bible-kjv:Psa117")
    assert len(psalm117.text.splitlines()) == 2


@needs_austen
def test_austen_chapters():
    docs = list(load_corpus("austen"))
    per_book = {}
    for d in docs:
        per_book[d.source.split(":")[1]] = per_book.get(d.source.split(":")[1], 0) + 1
    assert per_book == {"sensesensibility": 50, "prideprejudice": 61, "mansfieldpark": 48, "emma": 55,
                        "northangerabbey": 31, "persuasion": 24}
    pp1 = next(d for d in docs if d.source == "austen:prideprejudice:1")
    assert pp1.text.startswith("It is a truth universally acknowledged, that a single man in possession of a good")
    assert "\n\n" in pp1.text and "CHAPTER" not in pp1.text.upper().split("\n\n")[0]


@needs_austen
def test_austen_books():
    docs = list(load_corpus("austen-books"))
    assert [d.source for d in docs] == [f"austen:{k}" for k in austen.BOOKS]
    assert docs[3].text.startswith("EMMA") and len(docs[3].text) > 800_000


def test_missing_builtin_package_gives_install_command(monkeypatch):
    monkeypatch.setitem(BUILTINS, "bible-kjv", dataclasses.replace(BUILTINS["bible-kjv"], is_available=lambda: False))
    with pytest.raises(ShoestringError, match="apt-get install -y bible-kjv bible-kjv-text"):
        load_corpus("bible-kjv")


def _xdr_strings(values: list[str]) -> bytes:
    """R's serialize() of a character vector, written by hand (version 2, XDR)."""
    out = b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300) + struct.pack(">ii", 16, len(values))
    for v in values:
        out += struct.pack(">ii", 0x40009, len(v.encode())) + v.encode()
    return out


def test_rdata_reads_a_lazyload_database(tmp_path):
    blob = _xdr_strings(["Hello", "world"])
    stored = struct.pack(">I", len(blob)) + zlib.compress(blob)
    (tmp_path / "db.rdb").write_bytes(stored)
    # the index: list(variables = list(x = c(0, len)), references = list(), compressed = TRUE)
    def ints(*xs):
        return struct.pack(">ii", 13, len(xs)) + b"".join(struct.pack(">i", x) for x in xs)

    def attr(*names):  # attributes: pairlist(names = c(...)), the STRSXP taken without its header
        return (struct.pack(">iii", 0x402, 1, 0x40009) + struct.pack(">i", 5) + b"names"
                + _xdr_strings(list(names))[14:] + struct.pack(">i", 254))

    variables = struct.pack(">ii", 19 | 0x200, 1) + ints(0, len(stored)) + attr("x")
    index = (b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300) + struct.pack(">ii", 19 | 0x200, 3) + variables
             + struct.pack(">ii", 19, 0) + struct.pack(">ii", 10, 1) + struct.pack(">i", 1)
             + attr("variables", "references", "compressed"))
    (tmp_path / "db.rdx").write_bytes(gzip.compress(index))
    assert rdata.read_lazyload(tmp_path / "db") == {"x": ["Hello", "world"]}
