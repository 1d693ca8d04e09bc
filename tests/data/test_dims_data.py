"""Data and tasks on d-dimensional lattices: open-worm insertion (and that its 2D draws are those of
the original 2D code), labels, the data module with augmentation, and cache keys."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from scalar_ml.data.cache import EnsembleCache, EnsembleRequest
from scalar_ml.data.datamodules import LatticeDataModule
from scalar_ml.data.violations import (
    check_worms_fit,
    has_violation,
    insert_open_worms,
    violation_count,
)
from scalar_ml.physics import Lattice, PhysicsParams
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.observables import flux_divergence
from scalar_ml.physics.theory import get_theory
from scalar_ml.tasks import ClosedSample, get_task, task_names


def insert_open_worms_2d_reference(
    configs: np.ndarray,
    n_worms: int | Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    *,
    min_length: int = 1,
    max_length: int | None = None,
) -> np.ndarray:
    """The 2D insertion as it was before the d-dimensional version (commit c14151c)."""
    arr = np.asarray(configs)
    if arr.ndim != 4 or arr.shape[1] != 4:
        raise ValueError(f"configs must have shape (N, 4, Nt, Nx), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"configs must be integer arrays, got dtype {arr.dtype}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n_cfg, _, nt, nx = arr.shape
    counts = np.asarray(n_worms)
    if counts.ndim == 0:
        counts = np.full(n_cfg, counts)
    if counts.shape != (n_cfg,):
        raise ValueError(f"n_worms must be a scalar or have shape ({n_cfg},), got {counts.shape}")
    check_worms_fit(counts, nt, nx)
    counts = counts.astype(np.int64)
    if (
        isinstance(min_length, bool)
        or not isinstance(min_length, int | np.integer)
        or min_length < 1
    ):
        raise ValueError(f"min_length must be an integer >= 1, got {min_length!r}")
    if max_length is None:
        max_length = max(int(min_length), nt + nx)
    if isinstance(max_length, bool) or not isinstance(max_length, int | np.integer):
        raise ValueError(f"max_length must be an integer, got {max_length!r}")
    if max_length < min_length:
        raise ValueError(f"max_length ({max_length}) must be >= min_length ({min_length})")
    div0 = flux_divergence(arr)
    open_ = np.flatnonzero(np.any(div0 != 0, axis=(-2, -1)))
    if open_.size:
        raise ValueError(
            f"{open_.size} input configuration(s) are not closed (div k != 0; first: index "
            f"{open_[0]}): open worms can only be counted on closed configurations"
        )

    out = np.array(arr, copy=True)
    flat = out.reshape(n_cfg, 4, nt * nx)  # a view: updates land in ``out``
    volume = nt * nx
    occupied = np.zeros((n_cfg, volume), dtype=bool)

    for m in range(int(counts.max(initial=0))):
        cfg = np.flatnonzero(counts > m)
        n_act = cfg.size
        # Start: uniform over free sites (redraw the occupied ones; at least 2 free sites remain).
        start = rng.integers(volume, size=n_act)
        bad = occupied[cfg, start]
        while bad.any():
            start[bad] = rng.integers(volume, size=int(bad.sum()))
            bad = occupied[cfg, start]
        delta = rng.choice(np.array([-1, 1], dtype=np.int64), size=n_act)
        length = rng.integers(min_length, max_length + 1, size=n_act)
        t, x = np.divmod(start, nx)
        steps = np.zeros(n_act, dtype=np.int64)
        walking = np.ones(n_act, dtype=bool)
        while walking.any():
            w = np.flatnonzero(walking)
            move = rng.integers(4, size=w.size)  # 0: +t, 1: -t, 2: +x, 3: -x
            nu = move // 2
            backward = (move % 2) == 1
            tw, xw = t[w], x[w]
            # The link that is traversed starts at the head (forward) or at its neighbour (backward).
            lt = np.where(backward & (nu == 0), (tw - 1) % nt, tw)
            lx = np.where(backward & (nu == 1), (xw - 1) % nx, xw)
            change = np.where(backward, -delta[w], delta[w]).astype(out.dtype)
            np.add.at(flat, (cfg[w], nu, lt * nx + lx), change)
            step_t = np.where(nu == 0, np.where(backward, -1, 1), 0)
            step_x = np.where(nu == 1, np.where(backward, -1, 1), 0)
            t[w] = (tw + step_t) % nt
            x[w] = (xw + step_x) % nx
            steps[w] += 1
            head = t[w] * nx + x[w]
            done = (steps[w] >= length[w]) & (head != start[w]) & ~occupied[cfg[w], head]
            walking[w[done]] = False
        occupied[cfg, start] = True
        occupied[cfg, t * nx + x] = True

    got = violation_count(out)
    if not np.array_equal(got, counts):
        bad_i = int(np.flatnonzero(got != counts)[0])
        raise AssertionError(
            f"open-worm insertion produced {got[bad_i]} violations instead of {counts[bad_i]} "
            f"(configuration {bad_i}): this is a bug"
        )
    return out


def closed_configs(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Closed configurations: random plaquette loops in every plane, a winding, random l."""
    d = len(shape)
    cfg = np.zeros((n, 2 * d, *shape), dtype=np.int32)
    for i in range(n):
        for _ in range(int(np.prod(shape)) // 2):
            a, b = sorted(rng.choice(d, size=2, replace=False))
            x = [int(rng.integers(s)) for s in shape]
            s = int(rng.choice([-1, 1]))
            xa = list(x)
            xa[a] = (xa[a] + 1) % shape[a]
            xb = list(x)
            xb[b] = (xb[b] + 1) % shape[b]
            cfg[(i, a, *x)] += s
            cfg[(i, b, *xa)] += s
            cfg[(i, a, *xb)] -= s
            cfg[(i, b, *x)] -= s
        cfg[(i, 0, slice(None), *[int(rng.integers(s)) for s in shape[1:]])] += 1
        cfg[i, d:] = rng.poisson(0.7, size=(d, *shape))
    assert not np.any(flux_divergence(cfg, dims=d))
    return cfg


@pytest.mark.parametrize("shape", [(6, 6), (8, 8), (60, 4), (5, 3)])
def test_2d_insertion_draws_as_the_original_2d_code(shape: tuple[int, int]) -> None:
    cfg = closed_configs(np.random.default_rng(1), 6, shape)
    for counts, kwargs in (([0, 1, 2, 3, 1, 2], {}), (2, {"min_length": 2, "max_length": 5})):
        new = insert_open_worms(cfg, counts, np.random.default_rng(5), **kwargs)
        old = insert_open_worms_2d_reference(cfg, counts, np.random.default_rng(5), **kwargs)
        assert np.array_equal(new, old)


@pytest.mark.parametrize("shape", [(4, 4, 4), (6, 3, 5), (3, 3, 2, 4)])
def test_insertion_in_3d_and_4d(shape: tuple[int, ...]) -> None:
    d = len(shape)
    cfg = closed_configs(np.random.default_rng(2), 5, shape)
    counts = np.array([0, 1, 3, 5, 2])
    out = insert_open_worms(cfg, counts, np.random.default_rng(3))
    assert out.shape == cfg.shape and out.dtype == cfg.dtype
    assert np.array_equal(violation_count(out, dims=d), counts)
    assert np.array_equal(has_violation(out, dims=d), counts > 0)
    assert np.array_equal(out[:, d:], cfg[:, d:])  # l untouched
    ends = np.abs(flux_divergence(out, dims=d))
    assert ends.max() <= 1  # end points never coincide
    assert np.array_equal(out, insert_open_worms(cfg, counts, np.random.default_rng(3)))
    # the worms walk along every axis
    changed = (out[:, :d] != cfg[:, :d]).reshape(5, d, -1).any(axis=(0, 2))
    assert changed.all()


def test_worm_counts_and_shapes_are_checked_in_3d() -> None:
    with pytest.raises(ValueError, match="a 4x4x2 lattice has only 32 sites"):
        check_worms_fit([17], 4, 4, 2)
    with pytest.raises(ValueError, match=r"\(N, 2d, N_0, \.\.\., N_\(d-1\)\)"):
        insert_open_worms(np.zeros((2, 4, 3, 3, 3), dtype=np.int32), 1, np.random.default_rng(0))


@pytest.mark.parametrize("name", task_names())
def test_every_task_makes_3d_examples(name: str) -> None:
    task = get_task(name)
    shape = (4, 3, 4)
    cfg = closed_configs(np.random.default_rng(4), 6, shape)
    params = PhysicsParams(6.01, 1.0, 1.0)
    stored = get_theory().measure(cfg, params, dims=3)
    rng = np.random.default_rng(9)
    worms = [0] if not task.inserts_worms else [1, 3] if task.min_worms else [0, 5]
    counts = task.training_counts(rng, 6, worms)
    x, y = task.make_examples(ClosedSample(cfg, params, stored), counts, rng)
    assert x.shape == cfg.shape
    if task.per_site:
        assert y.shape == (6, task.n_outputs, *shape)
        assert np.array_equal(y.sum(axis=(1, 2, 3, 4)), 2 * counts)
    else:
        assert y.shape == (6, task.n_outputs)
    if task.inserts_worms:
        assert np.array_equal(violation_count(x, dims=3), counts)


def _fake_generate(params, lattice, n_configs, seed, **_options) -> Ensemble:
    cfg = closed_configs(np.random.default_rng(seed), n_configs, lattice.shape)
    obs = get_theory().measure(cfg, params, dims=lattice.dims)
    return Ensemble(configs=cfg, meta={}, **obs)


@pytest.mark.filterwarnings("ignore:sweeps_between = 2 is shorter:UserWarning")
def test_data_module_in_3d_with_translations(tmp_path) -> None:
    """Training data on a 3D lattice (real, short chains); the random translations roll every axis
    and move per-site targets with the inputs (end points recomputed from a shifted input are the
    shifted targets)."""
    dm = LatticeDataModule(
        task="localisation", lattice="4x3x5", n_train=8, n_val=2, n_test=0, batch_size=4,
        points={"a": {"eta": 6.01, "lam": 1.0, "mu": 1.0}}, worms=[1, 2], translate=True,
        cache_dir=str(tmp_path),
        sampler={"n_chains": 2, "n_therm": 20, "sweeps_between": 2, "progress": False},
    )  # fmt: skip
    dm.setup()
    train = dm.split("train")
    assert train.inputs.shape == (8, 6, 4, 3, 5) and train.targets.shape == (8, 1, 4, 3, 5)
    assert dm.describe()["lattice"] == {"shape": [4, 3, 5]}
    batches = 0
    for x, y in dm.train_dataloader():
        ends = np.abs(flux_divergence(x.numpy().astype(np.int64), dims=3))
        assert np.array_equal(ends[:, None].astype(np.float32), y.numpy())
        batches += 1
    assert batches == 2
    # the shifts of one epoch move the samples along every axis
    sampler = dm.train_dataloader().batch_sampler
    shifts = torch.cat([b.shifts for b in sampler])
    assert shifts.shape == (8, 3) and (shifts > 0).any(dim=0).all()


@pytest.mark.parametrize("augment", ["symmetry", ["P"]])
def test_point_group_augmentation_beyond_2d_is_refused_before_sampling(tmp_path, augment) -> None:
    """The point groups are those of the 2D lattice: data.augment on 3D data is a clear error, raised
    before any ensemble is generated (augment="none", the default, works: the test above)."""
    with pytest.raises(ValueError, match="point symmetries here are those of a 2D lattice"):
        LatticeDataModule(
            task="counting", lattice="4x3x5", n_train=8, n_val=2, n_test=0, batch_size=4,
            points={"a": {"eta": 6.01, "lam": 1.0, "mu": 1.0}}, worms=[0, 1],
            augment=augment, cache_dir=str(tmp_path / "cache"),
        )  # fmt: skip
    assert not (tmp_path / "cache").exists()


def test_cache_keys_2d_unchanged_and_3d_by_shape() -> None:
    p = PhysicsParams(4.01, 1.0, 1.0)
    two = EnsembleRequest.create(p, Lattice(8, 8), 100, 1).key_payload()
    assert two["nt"] == 8 and two["nx"] == 8 and "shape" not in two
    three = EnsembleRequest.create(PhysicsParams(6.01, 1.0, 1.0), Lattice(8, 8, 8), 100, 1)
    assert three.key_payload()["shape"] == [8, 8, 8] and "nt" not in three.key_payload()
    assert three.filename().startswith("eta6.01_lam1_mu1_8x8x8_n100_s1-")
    with pytest.raises(ValueError, match="in 3 dimensions"):
        EnsembleRequest.create(PhysicsParams(6.01, 0.0, 0.5), Lattice(8, 8, 8), 100, 1)


def test_cache_stores_and_loads_a_3d_ensemble(tmp_path) -> None:
    cache = EnsembleCache(tmp_path, generator=_fake_generate, algorithm="fake")
    p, lat = PhysicsParams(6.01, 1.0, 0.5), Lattice(4, 3, 2)
    a = cache.get(p, lat, 6, 3)
    b = cache.get(p, lat, 6, 3)  # a hit: the same bytes, read back and checked
    assert a.configs.shape == (6, 6, 4, 3, 2) and np.array_equal(a.configs, b.configs)
    assert b.meta["lattice"] == {"shape": [4, 3, 2]}
    np.testing.assert_array_equal(a.phi2, b.phi2)
