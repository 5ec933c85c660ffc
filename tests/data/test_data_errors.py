"""Every bad input raises a ShoestringError with a one-line message naming the problem and the fix."""

from __future__ import annotations

import pytest

pytest_plugins = ["data_fixtures"]  # fixtures: tok, texts, text_dir, jsonl_file

from shoestring.data import load_corpus, pack
from shoestring.errors import ShoestringError


def one_line(err: ShoestringError) -> str:
    msg = str(err)
    assert "\n" not in msg and err.fix, msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(ShoestringError) as e:
        load_corpus(str(tmp_path / "nope.txt"))
    msg = one_line(e.value)
    assert "no file or folder" in msg and "nope.txt" in msg and "stdlib-code" in msg


def test_unknown_builtin_suggests(tmp_path):
    with pytest.raises(ShoestringError) as e:
        load_corpus("stdlib_code")
    msg = one_line(e.value)
    assert "unknown built-in corpus 'stdlib_code'" in msg and "did you mean 'stdlib-code'" in msg
    with pytest.raises(ShoestringError, match="did you mean 'bible-kjv'"):
        load_corpus("bible")


@pytest.mark.parametrize("kind", ["empty file", "blank lines", "empty folder", "no glob match", "empty jsonl"])
def test_empty_corpus(tmp_path, kind):
    if kind == "empty file":
        spec = tmp_path / "empty.txt"
        spec.write_text("")
    elif kind == "blank lines":
        spec = tmp_path / "blank.txt"
        spec.write_text("\n \n\n")
    elif kind == "empty folder":
        spec = tmp_path / "folder"
        spec.mkdir()
        (spec / "data.bin").write_bytes(b"\0")
    elif kind == "no glob match":
        spec = tmp_path / "*.txt"
    else:
        spec = tmp_path / "e.jsonl"
        spec.write_text('{"text": ""}\n')
    with pytest.raises(ShoestringError) as e:
        load_corpus(str(spec), split_lines=kind == "blank lines")
    assert f"corpus '{spec}' has no documents" in one_line(e.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_missing_text_column_lists_columns(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    if suffix == ".jsonl":
        path.write_text('{"body": "x", "title": "y"}\n')
    elif suffix == ".csv":
        path.write_text("body,title\nx,y\n")
    else:
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"body": ["x"], "title": ["y"]}), path)
    with pytest.raises(ShoestringError) as e:
        load_corpus(str(path))
    msg = one_line(e.value)
    assert "no text column 'text'" in msg and "body, title" in msg


def test_bad_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"\n')
    with pytest.raises(ShoestringError, match=r"bad.jsonl:1 is not valid JSON"):
        load_corpus(str(path))


def test_bad_limit_docs():
    with pytest.raises(ShoestringError, match="limit_docs=0"):
        load_corpus("stdlib-prose", limit_docs=0)


@pytest.mark.parametrize("kwargs,match", [({"sep": "nl"}, "not a separator"), ({"context_length": 1}, "too short")])
def test_bad_pack_arguments(tok, kwargs, match):
    corpus = load_corpus("stdlib-prose", limit_docs=2)
    args = {"context_length": 16, **kwargs}
    with pytest.raises(ShoestringError, match=match):
        pack(corpus, tok, **args)  # raised at the call, not at the first next()
