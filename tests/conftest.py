"""Shared pytest setup: caches go to temporary directories, threads stay at the CI's two cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh, empty ensemble cache directory for one test."""
    d = tmp_path / "data"
    d.mkdir()
    return d


# --doctest-modules would also import every conftest.py and helper module under tests/ as a plain
# module named after its file; several share a basename ("conftest"), which makes the collection
# depend on the order of the paths given. Doctests live in scalar_ml/, so skip these here.
collect_ignore_glob = ["*/conftest.py", "*_helpers.py"]
