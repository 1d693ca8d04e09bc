"""Fixtures of the physics tests (tolerances live in ``physics_tolerances.py``)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A numpy generator seeded from the test's name (reproducible, different per test)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
