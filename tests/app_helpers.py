"""Running the Hydra apps in tests: composition as ``@hydra.main`` does it, and CLI subprocess env."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import scalar_ml  # noqa: F401  (registers the config resolvers)
from scalar_ml.paths import CONF_DIR

#: Short sampler chains for test ensembles (the sampler warns that they are correlated).
TINY_SAMPLER: list[str] = [
    "sampler.n_chains=2",
    "sampler.n_therm=20",
    "sampler.sweeps_between=2",
    "sampler.progress=false",
]
#: A training of a few batches on the task's default lattice, no loggers, no console noise.
TINY_TRAIN: list[str] = [
    *TINY_SAMPLER,
    "data.n_train=32",
    "data.n_val=16",
    "data.n_test=16",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "++trainer.enable_progress_bar=false",
    "logger=none",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
]


def compose_app(config: str, overrides: Sequence[str], run_dir: Path, cache: Path) -> DictConfig:
    """Compose ``conf/<config>.yaml`` as ``@hydra.main`` would (HydraConfig set, ``hydra`` node removed).

    ``paths.data_dir`` is the given ensemble cache and ``paths.output_dir`` the given run directory.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config,
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


def subprocess_env(cache: Path, tmp: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: the given cache, wandb offline and quiet, caches in tmp.

    The running interpreter's directory leads ``PATH``, so documented commands (``python train.py``,
    ``tensorboard``, ``wandb``) use this environment's installation even when it is not activated.
    """
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]),
        SCALAR_ML_DATA_DIR=str(cache),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(tmp / "wandb_dir"),
        WANDB_CACHE_DIR=str(tmp / "wandb_cache"),
        WANDB_CONFIG_DIR=str(tmp / "wandb_config"),
        HYDRA_FULL_ERROR="1",
        PYTHONWARNINGS="ignore",
    )
    return env
