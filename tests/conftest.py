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
