"""A tiny model with the real SmolLM2 tokenizer (texts in, texts out), shared by the steering tests."""

from __future__ import annotations

import pytest

import shoestring
from cli_helpers import tiny_smol_dir

POS = ["I love this film", "What a great day", "The food was wonderful"]
NEG = ["I hate this film", "What an awful day", "The food was terrible"]


@pytest.fixture(scope="session")
def smol_lm(tmp_path_factory):
    return shoestring.load(str(tiny_smol_dir(tmp_path_factory.mktemp("tiny-smol-steer"))))
