"""Constants of the evaluation tests (fixtures live in conftest.py)."""

from __future__ import annotations

#: Short sampler chains for test ensembles (the sampler warns that they are correlated).
TINY_SAMPLER: list[str] = [
    "sampler.n_chains=2",
    "sampler.n_therm=20",
    "sampler.sweeps_between=2",
    "sampler.progress=false",
]
#: A training of a few batches, no loggers, no console noise.
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
#: A 2-size x 2-parameter counting grid with three worm counts, 8 configurations per cell.
TINY_GRID: list[str] = [
    "grid=counting_small",
    "grid.lattices=[8x8,16x16]",
    "grid.worms=[0,1,5]",
    "grid.n_configs=8",
]
#: Sampler warnings about deliberately short test chains.
SHORT_CHAINS = "ignore:.*shorter than.*:UserWarning"
