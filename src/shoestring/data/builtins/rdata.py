"""A small pure-Python reader for R lazy-load databases (``Rdata.rdx`` + ``Rdata.rdb``).

Enough of R's XDR serialization format (version 2 and 3) to read the data sets of R packages:
vectors, strings, lists, pairlists with attributes, symbols and references. Environments,
closures and byte code are read structurally and returned as ``None``.
Format reference: R's ``src/main/serialize.c`` and ``src/main/saveload.c`` (``R_lazyLoadDBinsertValue``).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

NILVALUE, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE = 254, 253, 252, 251, 250
NAMESPACESXP, PACKAGESXP, PERSISTSXP, EMPTYENV, BASEENV, REFSXP = 249, 248, 247, 242, 241, 255
ATTRLANGSXP, ATTRLISTSXP, ALTREP = 240, 239, 238
SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 1, 2, 3, 4, 5, 6
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP, DOTSXP = 9, 10, 13, 14, 15, 16, 17
VECSXP, EXPRSXP, BCODESXP, EXTPTRSXP, WEAKREFSXP, RAWSXP, S4SXP = 19, 20, 21, 22, 23, 24, 25
NA_INT = -(2**31)


@dataclass
class RObject:
    """An R value with attributes: ``value`` is a list, a Python list of strings/numbers, or a dict (pairlist)."""

    value: object
    attributes: dict = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos, self.refs = data, 0, []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def bytes(self, n: int) -> bytes:
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def header(self) -> None:
        if self.bytes(2) != b"X\n":
            raise ValueError("not an XDR R serialization")
        version = self.int()
        self.int(), self.int()  # writer and minimal reader R versions
        if version == 3:
            self.bytes(self.int())  # native encoding name

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == REFSXP:
            idx = flags >> 8 or self.int()
            return self.refs[idx - 1]
        if kind in (NILVALUE, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE, EMPTYENV, BASEENV):
            return None
        if kind in (PERSISTSXP, NAMESPACESXP, PACKAGESXP):
            self.item()  # a STRSXP naming it
            self.refs.append(None)
            return None
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == ENVSXP:
            self.int()  # locked
            self.refs.append(None)
            for _ in range(4):  # enclosure, frame, hash table, attributes
                self.item()
            return None
        if kind in (LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP, ATTRLANGSXP, ATTRLISTSXP):
            return self._pairlist(has_attr, has_tag)
        if kind == CHARSXP:
            n = self.int()
            return None if n == -1 else self.bytes(n).decode("utf-8", errors="replace")
        value = self._vector(kind)
        attrs = self.item() if has_attr else {}
        return RObject(value, attrs or {}) if attrs else value

    def _pairlist(self, has_attr: bool, has_tag: bool) -> dict:
        out: dict = {}
        while True:  # a pairlist is a linked list; walk the CDR chain instead of recursing
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            out[tag if tag is not None else len(out)] = self.item()
            flags = self.int()
            kind = flags & 0xFF
            if kind not in (LISTSXP, LANGSXP, ATTRLISTSXP, ATTRLANGSXP):
                self.pos -= 4
                self.item()  # the final CDR (normally NULL)
                return out
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))

    def _vector(self, kind: int):
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            vals = struct.unpack_from(f">{n}i", self.data, self.pos)
            self.pos += 4 * n
            return [None if v == NA_INT else v for v in vals]
        if kind == REALSXP:
            n = self.length()
            vals = struct.unpack_from(f">{n}d", self.data, self.pos)
            self.pos += 8 * n
            return list(vals)
        if kind == CPLXSXP:
            n = self.length()
            self.pos += 16 * n
            return None
        if kind == RAWSXP:
            return self.bytes(self.length())
        if kind in (STRSXP, VECSXP, EXPRSXP):
            return [self.item() for _ in range(self.length())]
        raise ValueError(f"unsupported R type {kind} in serialized data")


def unserialize(data: bytes):
    """Decode one XDR-serialized R object."""
    reader = _Reader(data)
    reader.header()
    return reader.item()


def _decompress(blob: bytes, compressed: int) -> bytes:
    """One ``.rdb`` blob: 4-byte big-endian length, then zlib (``compressed == 1``) or, for 2 and 3,
    a type byte (``Z`` zlib, ``2`` bzip2, ``X`` xz, ``0`` stored) and the data."""
    size = struct.unpack(">I", blob[:4])[0]
    if compressed == 1:
        return zlib.decompress(blob[4:])
    kind, body = blob[4:5], blob[5:]
    return {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress}.get(kind, lambda b: b[:size])(body)


def _named(obj) -> dict:
    """An R named list as a dict."""
    if isinstance(obj, RObject):
        return dict(zip(obj.attributes.get("names", []), obj.value))
    return dict(obj) if isinstance(obj, dict) else {}


def read_lazyload(base: Path) -> dict:
    """Every object of the lazy-load database ``base`` (``base.rdx`` + ``base.rdb``), by name."""
    rdx = base.with_suffix(".rdx").read_bytes()
    index = _named(unserialize(gzip.decompress(rdx) if rdx[:2] == b"\x1f\x8b" else rdx))
    compressed = int((index.get("compressed") or [1])[0])
    raw = base.with_suffix(".rdb").read_bytes()
    out = {}
    for name, (offset, length) in _named(index["variables"]).items():
        out[name] = unserialize(_decompress(raw[int(offset):int(offset) + int(length)], compressed))
    return out
