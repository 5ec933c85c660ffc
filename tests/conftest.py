"""Shared fixtures; the builders live in tiny_models.py (a unique module name: a folder's conftest.py
would shadow another's under `from conftest import ...`).

No test may touch the network: the hub is switched off before transformers is imported.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from tiny_models import make_lm, random_ids  # noqa: E402,F401

@pytest.fixture
def llama_lm():
    return make_lm("llama")


@pytest.fixture
def ids():
    return random_ids()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Belt and braces on top of HF_HUB_OFFLINE: any TCP connect from a test fails at once."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in the test suite")

    monkeypatch.setattr(socket, "create_connection", refuse)
