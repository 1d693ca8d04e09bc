r"""Test sets of one grid cell, built from cached ensembles by the cell's task.

A cell ``(lattice, point, M)`` of a grid with ``n_configs`` and ``seed`` (see :mod:`.grid`) uses the
ensemble ``load_ensemble(point, lattice, n_configs, seed)`` (generated into the cache on a miss).
All worm counts of one ``(lattice, point)`` share that ensemble. The task decides which
configurations of the cell get the ``M`` open worms (:meth:`~scalar_ml.tasks.Task.cell_counts`: none
for a task on closed configurations, a seeded half for detection, all for counting) and makes the
inputs and targets (:meth:`~scalar_ml.tasks.Task.make_examples`, labels recomputed from the
configurations and checked), from a generator seeded by ``(seed, lattice, point, M)`` only, so a
cell's data do not depend on which other cells are in the grid.

Inputs are float32 ``(N, C, Nt, Nx)`` (channels ``[k_t, k_x, l_t, l_x]``; ``(N, 2d, *shape)`` on a
d-dimensional lattice), targets float32 in the task's shape (``(N, n)`` in the order of its
outputs, or ``(N, C', *shape)`` per site).

Test data must not be training data: the training ensembles are drawn with the data seed of the
checkpoint (``data.seed``, default 0), the grids use another seed (default 1000), so their Markov
chains are independent (:func:`check_disjoint_seeds`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalar_ml.data.cache import load_ensemble
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.params import Lattice, PhysicsParams
from scalar_ml.physics.theory import get_theory
from scalar_ml.tasks import ClosedSample, Task, get_task

__all__ = ["CellData", "build_cell_data", "cell_rng", "check_disjoint_seeds", "load_block"]

#: Spawn-key tag of the evaluation's worm-insertion streams (distinct from the data modules' keys).
_EVAL_STREAM = 0xE7A1


@dataclass(frozen=True)
class CellData:
    """The test set of one cell: float32 ``inputs`` (N, C, *shape), ``targets``, int ``worms`` (N,)."""

    inputs: np.ndarray
    targets: np.ndarray
    worms: np.ndarray

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def _float_key(x: float) -> tuple[int, int]:
    """The 64 bits of a float as two 32-bit integers (a stable, exact seed component)."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", float(x) + 0.0))
    return bits >> 32, bits & 0xFFFFFFFF


def cell_rng(seed: int, lattice: Lattice, params: PhysicsParams, worms: int) -> np.random.Generator:
    """The worm-insertion generator of one cell (depends on nothing but these values; the key
    holds the lattice's extents, so lattices of different dimension have keys of different length)."""
    values = get_theory().values(params).values()
    key = (
        _EVAL_STREAM,
        *(int(n) for n in lattice.shape),
        *(k for v in values for k in _float_key(v)),
        int(worms),
    )
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def load_block(
    params: PhysicsParams,
    lattice: Lattice,
    n_configs: int,
    seed: int,
    *,
    cache_dir: str | None = None,
    sampler_options: Mapping[str, Any] | None = None,
) -> Ensemble:
    """The closed ensemble of one (lattice, point) from the cache (sampled on a miss)."""
    return load_ensemble(
        params, lattice, n_configs, seed, cache_dir=cache_dir, **dict(sampler_options or {})
    )


def build_cell_data(
    task: str | Task,
    ensemble: Ensemble,
    params: PhysicsParams,
    lattice: Lattice,
    worms: int,
    seed: int,
    *,
    max_worm_length: int | None = None,
) -> CellData:
    """The test set of cell ``(lattice, params, worms)`` from its block's ``ensemble`` (module docstring)."""
    task = get_task(task)
    theory = get_theory()
    configs = np.asarray(ensemble.configs)
    if configs.ndim != lattice.dims + 2 or configs.shape[2:] != lattice.shape:
        raise ValueError(f"ensemble of shape {configs.shape} does not match lattice {lattice}")
    task.check_worms("worms", [worms], [lattice])
    n = configs.shape[0]
    rng = cell_rng(seed, lattice, params, worms)
    counts = task.cell_counts(rng, n, worms)
    sample = ClosedSample(
        configs, params, {name: theory.series(ensemble, name) for name in theory.observable_names}
    )
    inputs, targets = task.make_examples(sample, counts, rng, max_worm_length=max_worm_length)
    return CellData(inputs.astype(np.float32), targets.astype(np.float32), counts)


def check_disjoint_seeds(grid_seed: int, training_data_seed: int | None, label: str) -> None:
    """Refuse a grid seed equal to a checkpoint's training data seed (the chains would be shared)."""
    if training_data_seed is not None and int(grid_seed) == int(training_data_seed):
        raise ValueError(
            f"grid.seed = {grid_seed} equals the data seed the checkpoint {label} was trained with: "
            "the test ensembles would repeat the training Markov chains; choose another grid.seed"
        )
