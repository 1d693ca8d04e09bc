"""Fixtures of the training tests: a session-wide tiny ensemble cache and config composition."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from app_helpers import compose_app
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import scalar_ml  # noqa: F401  (resolvers)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ensemble cache shared by the session's training tests."""
    return tmp_path_factory.mktemp("tiny_cache")


@pytest.fixture
def make_cfg(tiny_cache: Path, tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """``make_cfg(overrides, run_dir=None, cache=None)``: compose ``train.yaml`` like ``train.py`` does.

    The Hydra config is registered (``HydraConfig``) and removed from the returned config, as
    ``@hydra.main`` does; ``paths.output_dir`` points to ``run_dir`` (default: a fresh temp dir).
    """
    counter = iter(range(10**6))

    def _make(
        overrides: Sequence[str], run_dir: Path | None = None, cache: Path | None = None
    ) -> DictConfig:
        run_dir = run_dir or tmp_path / f"run{next(counter)}"
        return compose_app("train", overrides, run_dir, cache or tiny_cache)

    yield _make
    GlobalHydra.instance().clear()
