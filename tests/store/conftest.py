from __future__ import annotations

import pytest
from store_helpers import tiny_lm


@pytest.fixture
def lm():
    return tiny_lm()
