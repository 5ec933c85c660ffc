"""Fixtures for the runs tests: a fresh runs root and a spec writer."""

from __future__ import annotations

import textwrap

import pytest


@pytest.fixture
def root(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def write_spec(tmp_path):
    def write(text: str, name: str = "spec.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
