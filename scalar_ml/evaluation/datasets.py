r"""Test sets of one grid cell, built from cached ensembles with the data layer's own functions.

A cell ``(lattice, point, M)`` of a grid with ``n_configs`` and ``seed`` (see :mod:`.grid`) uses the
ensemble ``load_ensemble(point, lattice, n_configs, seed)`` (generated into the cache on a miss).
All worm counts of one ``(lattice, point)`` share that ensemble; the open worms of each cell are
inserted with :func:`scalar_ml.data.violations.insert_open_worms` from a generator seeded by
``(seed, nt, nx, eta, lam, mu, M)`` only, so a cell's data do not depend on which other cells are in
the grid. Targets are recomputed from the configurations (never taken from the insertion intent):

- ``observables``: ``(n, |φ|²)`` by :func:`scalar_ml.physics.observables.measure` (checked against
  the ensemble's stored values), ``worms = 0``;
- ``detection``: a seeded half (``⌊N/2⌋``) of the configurations gets ``M >= 1`` worms, label
  ``any div k ≠ 0`` (:func:`~scalar_ml.data.violations.has_violation`);
- ``counting``: every configuration gets ``M`` worms, target ``½ Σ_x |div_x k|``
  (:func:`~scalar_ml.data.violations.violation_count`), checked to equal ``M``.

Inputs are float32 ``(N, 4, Nt, Nx)`` (channels ``[k_t, k_x, l_t, l_x]``), targets float32 ``(N, d)``
in the order of the task's network outputs (``TASK_TARGETS``).

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
from scalar_ml.data.labels import insert_and_label, observable_targets
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.params import Lattice, PhysicsParams

__all__ = ["CellData", "build_cell_data", "cell_rng", "check_disjoint_seeds", "load_block"]

#: Spawn-key tag of the evaluation's worm-insertion streams (distinct from the data modules' keys).
_EVAL_STREAM = 0xE7A1


@dataclass(frozen=True)
class CellData:
    """The test set of one cell: float32 ``inputs`` (N, 4, Nt, Nx), ``targets`` (N, d), int ``worms`` (N,)."""

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
    """The worm-insertion generator of one cell (depends on nothing but these values)."""
    key = (
        _EVAL_STREAM,
        int(lattice.nt),
        int(lattice.nx),
        *_float_key(params.eta),
        *_float_key(params.lam),
        *_float_key(params.mu),
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
    task: str,
    ensemble: Ensemble,
    params: PhysicsParams,
    lattice: Lattice,
    worms: int,
    seed: int,
    *,
    max_worm_length: int | None = None,
) -> CellData:
    """The test set of cell ``(lattice, params, worms)`` from its block's ``ensemble`` (module docstring)."""
    configs = np.asarray(ensemble.configs)
    if configs.shape[-2:] != (lattice.nt, lattice.nx):
        raise ValueError(f"ensemble of shape {configs.shape} does not match lattice {lattice}")
    n = configs.shape[0]
    if task == "observables":
        if worms != 0:
            raise ValueError(f"observables cells take no worms, got {worms}")
        targets = observable_targets(configs, params, ensemble.n, ensemble.phi2)
        return CellData(
            configs.astype(np.float32), targets.astype(np.float32), np.zeros(n, dtype=np.int64)
        )
    rng = cell_rng(seed, lattice, params, worms)
    if task == "detection":
        if worms < 1:
            raise ValueError(f"detection cells need worms >= 1, got {worms}")
        counts = np.zeros(n, dtype=np.int64)
        counts[rng.permutation(n)[: n // 2]] = worms
    elif task == "counting":
        counts = np.full(n, worms, dtype=np.int64)
    else:
        raise ValueError(f"unknown task {task!r}")
    out, labels = insert_and_label(task, configs, counts, rng, max_length=max_worm_length)
    return CellData(out.astype(np.float32), labels.astype(np.float32), counts)


def check_disjoint_seeds(grid_seed: int, training_data_seed: int | None, label: str) -> None:
    """Refuse a grid seed equal to a checkpoint's training data seed (the chains would be shared)."""
    if training_data_seed is not None and int(grid_seed) == int(training_data_seed):
        raise ValueError(
            f"grid.seed = {grid_seed} equals the data seed the checkpoint {label} was trained with: "
            "the test ensembles would repeat the training Markov chains; choose another grid.seed"
        )
