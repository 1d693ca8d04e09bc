"""Constants of the evaluation tests (fixtures live in conftest.py)."""

from __future__ import annotations

from app_helpers import TINY_SAMPLER, TINY_TRAIN

__all__ = ["SHORT_CHAINS", "TINY_GRID", "TINY_SAMPLER", "TINY_TRAIN"]

#: A 2-size x 2-parameter counting grid with three worm counts, 8 configurations per cell.
TINY_GRID: list[str] = [
    "grid=counting_small",
    "grid.lattices=[8x8,16x16]",
    "grid.worms=[0,1,5]",
    "grid.n_configs=8",
]
#: Sampler warnings about deliberately short test chains.
SHORT_CHAINS = "ignore:.*shorter than.*:UserWarning"
