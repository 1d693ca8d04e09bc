"""Shared constants and functions of the training tests (fixtures live in conftest.py).

``TINY`` overrides keep every run to a few batches; the ensembles they need (two 8×8 points for
detection/counting, two 60×4 mu values for observables) are sampled once per session into the
``tiny_cache`` fixture's directory and then read from it.
"""

from __future__ import annotations

from pathlib import Path

from app_helpers import TINY_SAMPLER, TINY_TRAIN

from scalar_ml.paths import PROJECT_ROOT

__all__ = [
    "REPO",
    "SHORT_CHAINS",
    "TINY",
    "TINY_OBS",
    "TINY_SAMPLER",
    "WARNING_FILTERS",
    "tiny_for",
]

REPO: Path = PROJECT_ROOT

#: Small data, one epoch, no loggers and no console noise.
TINY: list[str] = TINY_TRAIN
#: Observables with two mu values only (fewer ensembles to sample).
TINY_OBS: list[str] = ["data.mu_values=[0.95,1.05]"]
#: Sampler warnings about deliberately short test chains.
SHORT_CHAINS = "ignore:.*shorter than.*:UserWarning"
#: Warnings expected with tiny test data or from Lightning's own deprecations.
WARNING_FILTERS = [
    SHORT_CHAINS,
    "ignore:.*smaller than the logging interval.*",
    "ignore:.*isinstance.treespec, LeafSpec.*",
]


def tiny_for(task: str) -> list[str]:
    """``TINY`` plus the task-specific reductions (``task=...`` must be given by the caller)."""
    return TINY + (TINY_OBS if task == "observables" else [])
