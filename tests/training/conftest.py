"""Fixtures of the training tests: a session-wide tiny ensemble cache and config composition."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import scalar_ml  # noqa: F401  (resolvers)
from scalar_ml.paths import CONF_DIR


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
        cache = cache or tiny_cache
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    f"paths.data_dir={cache}",
                    f"paths.output_dir={run_dir}",
                    f"hydra.run.dir={run_dir}",
                    *overrides,
                ],
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield _make
    GlobalHydra.instance().clear()
