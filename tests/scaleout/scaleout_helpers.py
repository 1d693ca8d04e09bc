"""Shared constants and functions of the scale-out tests (DDP, launchers, shared studies).

Everything runs as a subprocess of the real command line (``train.py``, ``python -m
scalar_ml.sample``) on tiny 4×4 counting data, with caches and output directories in temp dirs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from app_helpers import TINY_SAMPLER

REPO: Path = Path(__file__).resolve().parents[2]

#: A tiny counting data set on 4×4, no loggers and no console noise.
TINY_TRAIN: list[str] = [
    *TINY_SAMPLER,
    "lattice.nt=4",
    "lattice.nx=4",
    "logger=none",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "++trainer.enable_progress_bar=false",
]

#: ``python -m scalar_ml.sample -m`` over two mu values on 4×4 (50 configurations each, JSON).
SAMPLE_MU_GRID: list[str] = [
    "physics.mu=0.5,0.6",
    "lattice.nt=4",
    "lattice.nx=4",
    "n_configs=50",
    "format=json",
    *TINY_SAMPLER,
]


def env_for(root: Path) -> dict[str, str]:
    """Environment of a CLI subprocess: ensemble cache under ``root/data``, wandb offline and quiet."""
    return {
        **os.environ,
        "SCALAR_ML_DATA_DIR": str(root / "data"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(root / "wandb"),
        "WANDB_CACHE_DIR": str(root / "wandb_cache"),
        "HYDRA_FULL_ERROR": "1",
        "PYTHONWARNINGS": "ignore",
    }


def run_cli(
    args: Sequence[str], root: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS...`` in the repository with :func:`env_for` and return the finished process."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env_for(root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
