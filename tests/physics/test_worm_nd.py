"""The d-dimensional worm kernel (scalar_ml.physics.worm_nd): the 2D algorithm, bookkeeping in 3D and
4D, determinism, and d-dimensional ensembles. Its physics is checked against exact results in
``test_sampler_exact_nd.py`` and against the phi representation in ``test_phi_reference_nd.py``."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from scalar_ml.physics import Lattice, PhysicsParams, WeightTable, generate_ensemble, measure
from scalar_ml.physics.worm import WormChains
from scalar_ml.physics.worm_nd import WormChainsND, neighbour_table_nd, worm_chains


@pytest.mark.parametrize(
    ("eta", "lam", "mu", "nt", "nx"),
    [
        (4.01, 1.0, 1.0, 6, 4),
        (4.5, 0.0, 0.3, 4, 4),
        (4.25, 1.0, 0.0, 2, 3),  # Nt = 2: two distinct links join the same pair of sites
    ],
)
def test_at_d2_it_is_the_2d_kernel(eta: float, lam: float, mu: float, nt: int, nx: int) -> None:
    """With d = 2 the generalised kernel reproduces the 2D kernel bit for bit: same draws, same
    arithmetic, same calibration, records and counters (so the generalisation kept the algorithm).
    """
    params, lattice = PhysicsParams(eta, lam, mu), Lattice(nt, nx)
    runs = []
    for chains_type in (WormChains, WormChainsND):
        chains = chains_type(params, lattice, seed=5, n_chains=3)
        wps = chains.calibrate(10)
        out = chains.run(150, record_every=7, record_first=3)
        runs.append((wps, out, chains))
    (wa, a, ca), (wb, b, cb) = runs
    assert wa == wb
    assert np.array_equal(a.series, b.series)
    assert np.array_equal(a.configs, b.configs) and a.configs.shape[2] == 4
    assert np.array_equal(a.observables, b.observables)
    assert ca.counters() == cb.counters()
    assert np.array_equal(ca.configs(), cb.configs())
    assert ca.counters()["step_accepted"] > 1000  # the chains moved


def test_neighbour_table_matches_the_2d_table_and_rolls() -> None:
    from scalar_ml.physics.worm import neighbour_table

    assert np.array_equal(neighbour_table_nd(Lattice(5, 3)), neighbour_table(Lattice(5, 3)))
    lattice = Lattice(3, 4, 2, 5)
    table = neighbour_table_nd(lattice)
    idx = np.arange(lattice.volume).reshape(lattice.shape)
    for nu in range(4):
        assert np.array_equal(table[:, 2 * nu], np.roll(idx, -1, axis=nu).ravel())
        assert np.array_equal(table[:, 2 * nu + 1], np.roll(idx, 1, axis=nu).ravel())


@pytest.mark.parametrize(
    ("eta", "lam", "mu", "shape"),
    [
        (6.01, 1.0, 0.7, (4, 3, 2)),  # non-cubic, extent 2 on one axis
        (6.5, 0.0, 0.3, (3, 3, 3)),
        (8.01, 1.0, 1.2, (2, 3, 2, 2)),  # 4D, Nt = 2
        (8.5, 0.0, 0.6, (3, 2, 2, 3)),
    ],
)
def test_incremental_bookkeeping_in_3d_and_4d(
    eta: float, lam: float, mu: float, shape: tuple[int, ...]
) -> None:
    """debug=True recomputes f and div k after every proposal; check_state re-checks in numpy;
    recorded configurations are closed and the kernel measures them as measure() does."""
    params, lattice = PhysicsParams(eta, lam, mu), Lattice(*shape)
    chains = WormChainsND(params, lattice, seed=7, n_chains=2, debug=True)
    chains.calibrate(5)
    out = chains.run(100, record_every=10)
    chains.check_state()
    counts = chains.counters()
    assert counts["step_accepted"] > 300 and counts["l_accepted"] > 20  # the state really moved
    d = lattice.dims
    cfgs = out.configs.reshape(-1, 2 * d, *shape)
    obs = measure(cfgs, params, check_closed=True, dims=d)
    kernel = out.observables.reshape(-1, 3)
    np.testing.assert_allclose(kernel[:, 0], obs["n"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(kernel[:, 1], obs["phi2"], rtol=1e-12)
    np.testing.assert_allclose(kernel[:, 2], obs["phi4"], rtol=1e-12)
    np.testing.assert_array_equal(out.series[:, 9::10, :], out.observables)
    # every direction carries flux: the step draws all d directions
    moved = np.abs(chains.configs()[:, :d]).sum(axis=(0, *range(2, 2 + d)))
    assert np.all(moved > 0), moved


def test_sweep_definition_in_3d() -> None:
    lattice = Lattice(4, 4, 2)
    chains = WormChainsND(PhysicsParams(6.01, 1.0, 1.0), lattice, seed=3, n_chains=2)
    wps = chains.calibrate(10)
    before = chains.counters()
    chains.run(20, series=False)
    after = chains.counters()
    # one sweep = one l proposal per link (d V of them) + worms_per_sweep worm attempts
    assert after["l_proposed"] - before["l_proposed"] == 2 * 20 * 3 * lattice.volume
    assert after["start_proposed"] - before["start_proposed"] == 2 * 20 * wps
    assert after["stop_accepted"] == after["worms_completed"] == after["start_accepted"]


def test_trajectory_independent_of_table_growth_and_threads() -> None:
    """A tiny start table (many NEED_GROW rewinds) or another thread count: the same chain."""
    params, lattice = PhysicsParams(6.01, 1.0, 1.3), Lattice(4, 4, 3)
    runs = []
    threads = numba.get_num_threads()
    try:
        for f_max, n_threads in ((8, 1), (512, threads)):
            numba.set_num_threads(n_threads)
            table = WeightTable(params.eta, params.lam, f_max=f_max)
            chains = WormChainsND(params, lattice, seed=11, n_chains=3, table=table)
            chains.calibrate(5)
            runs.append((chains.run(60, record_every=20), chains, table.f_max))
    finally:
        numba.set_num_threads(threads)
    (a, ca, fa), (b, cb, fb) = runs
    assert fa > 8 and fb == 512  # the small table had to grow
    assert np.array_equal(a.configs, b.configs) and np.array_equal(a.series, b.series)
    assert ca.counters() == cb.counters()


def test_worm_chains_picks_the_kernel_and_checks_the_dimension() -> None:
    assert type(worm_chains(PhysicsParams(4.5, 0.0, 0.0), Lattice(4, 4), 1)) is WormChains
    assert type(worm_chains(PhysicsParams(6.5, 0.0, 0.0), Lattice(4, 4, 4), 1)) is WormChainsND
    # eta = 6.01 at lam = 0, mu = 0.5 exists in 2D but not in 3D: refused before any work
    with pytest.raises(ValueError, match="in 3 dimensions"):
        WormChainsND(PhysicsParams(6.01, 0.0, 0.5), Lattice(4, 4, 4), seed=1)
    with pytest.raises(ValueError, match="seed"):
        WormChainsND(PhysicsParams(6.01, 1.0, 0.5), Lattice(4, 4, 4), seed=-1)


def test_generate_ensemble_in_3d_and_4d() -> None:
    for shape, eta in (((4, 3, 3), 6.01), ((2, 3, 2, 2), 8.01)):
        lattice = Lattice(*shape)
        ens = generate_ensemble(PhysicsParams(eta, 1.0, 0.8), lattice, 12, seed=4, n_chains=2)
        d = len(shape)
        assert ens.configs.shape == (12, 2 * d, *shape) and ens.configs.dtype == np.int32
        assert ens.meta["lattice"] == {"shape": list(shape)}
        obs = measure(ens.configs, PhysicsParams(eta, 1.0, 0.8), check_closed=True, dims=d)
        for name in ("n", "phi2", "phi4"):
            np.testing.assert_array_equal(obs[name], getattr(ens, name))
        if d == 3:  # the same seed, the same ensemble
            again = generate_ensemble(PhysicsParams(eta, 1.0, 0.8), lattice, 12, 4, n_chains=2)
            assert np.array_equal(ens.configs, again.configs)
