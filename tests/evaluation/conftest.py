"""Fixtures of the evaluation tests: a session-wide ensemble cache, tiny trained checkpoints, config composition."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from app_helpers import compose_app
from evaluation_helpers import TINY_SAMPLER, TINY_TRAIN
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import scalar_ml  # noqa: F401  (resolvers)


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ensemble cache shared by the session's evaluation tests."""
    return tmp_path_factory.mktemp("eval_cache")


@pytest.fixture(scope="session")
def counting_runs(tmp_path_factory: pytest.TempPathFactory, eval_cache: Path) -> dict[str, Path]:
    """Run directories of two tiny counting trainings (1 epoch on 8x8): ``{"eq": ..., "fl": ...}``.

    They sit side by side under one parent, like the jobs of a multirun.
    """
    from scalar_ml.training.train import train

    parent = tmp_path_factory.mktemp("counting_multirun")
    runs = {}
    for i, family in enumerate(("eq", "fl")):
        run_dir = parent / str(i)
        cfg = compose_app(
            "train",
            ["task=counting", f"model={family}", "seed=0", *TINY_TRAIN],
            run_dir,
            eval_cache,
        )
        train(cfg)
        runs[family] = run_dir
    GlobalHydra.instance().clear()
    return runs


@pytest.fixture
def make_eval_cfg(eval_cache: Path, tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """``make_eval_cfg(overrides, run_dir=None)``: compose ``evaluate.yaml`` with the test cache and tiny sampler."""
    counter = iter(range(10**6))

    def _make(overrides: Sequence[str], run_dir: Path | None = None) -> DictConfig:
        run_dir = run_dir or tmp_path / f"eval{next(counter)}"
        return compose_app(
            "evaluate", [*TINY_SAMPLER, "progress=false", *overrides], run_dir, eval_cache
        )

    yield _make
    GlobalHydra.instance().clear()
