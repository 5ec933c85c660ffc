"""Fixtures for the data tests (imported by name: a conftest.py here would shadow tests/conftest.py,
which other test folders import as `conftest`): the SmolLM2 tokenizer, small corpora in tmp_path."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def tok():
    """The real SmolLM2 tokenizer from the bundled model's cache (BOS <|im_start|>=1, EOS <|im_end|>=2)."""
    from transformers import AutoTokenizer

    from shoestring.models.bundled import cached_dir

    return AutoTokenizer.from_pretrained(cached_dir(progress=False))


TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about a little.",
    "It was the best of times, it was the worst of times.",
    "def f(x):\n    return x * 2\n",
    "Short.",
    "A longer document " + "with many repeated words " * 20,
]


@pytest.fixture
def texts():
    return list(TEXTS)


@pytest.fixture
def text_dir(tmp_path):
    """A folder of .txt/.md files (one per TEXTS entry), plus files that must be ignored."""
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    for i, text in enumerate(TEXTS):
        where = folder / "sub" if i == 5 else folder
        (where / f"n{i}.{'md' if i == 4 else 'txt'}").write_text(text)
    (folder / "ignore.json").write_text("{}")
    (folder / ".hidden.txt").write_text("hidden")
    return folder


@pytest.fixture
def jsonl_file(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(TEXTS)))
    return path
