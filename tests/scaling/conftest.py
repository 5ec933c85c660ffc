"""Shared fixtures of the scaling tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The models are tiny: one torch thread (two, on a busy shared machine, make every matmul wait)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
