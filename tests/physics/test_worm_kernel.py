"""Worm / l-update kernel: generator, incremental bookkeeping, table growth, counters."""

from __future__ import annotations

import numpy as np
import pytest

from scalar_ml.physics import Lattice, PhysicsParams, WeightTable, WormChains, measure
from scalar_ml.physics.worm import xoshiro_next

MASK = (1 << 64) - 1


def xoshiro_reference(state: list[int]) -> tuple[int, list[int]]:
    """xoshiro256++ (Blackman & Vigna) with Python integers."""

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK

    s0, s1, s2, s3 = state
    result = (rotl((s0 + s3) & MASK, 23) + s0) & MASK
    t = (s1 << 17) & MASK
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 45)
    return result, [s0, s1, s2, s3]


def test_xoshiro_matches_reference(rng: np.random.Generator) -> None:
    state = [int(v) for v in rng.integers(0, 2**63, size=4, dtype=np.uint64)]
    state[0] |= 1 << 63  # exercise the top bit
    ours = tuple(np.uint64(v) for v in state)
    for _ in range(50):
        ref, state = xoshiro_reference(state)
        out, *rest = xoshiro_next(*ours)
        ours = tuple(np.uint64(v) for v in rest)
        assert int(out) == ref
        assert [int(v) for v in ours] == state


@pytest.mark.parametrize(
    ("eta", "lam", "mu", "nt", "nx"),
    [
        (4.01, 1.0, 1.0, 4, 4),
        (4.01, 1.0, 1.5, 6, 4),
        (4.25, 1.0, 0.0, 2, 3),  # Nt = 2: two distinct links join the same pair of sites
        (4.5, 0.0, 0.3, 3, 2),
        (4.01, 5.0, 2.0, 4, 2),
    ],
)
def test_incremental_bookkeeping_matches_recomputation(
    eta: float, lam: float, mu: float, nt: int, nx: int
) -> None:
    """debug=True recomputes f and div k after every proposal; check_state re-checks in numpy."""
    chains = WormChains(
        PhysicsParams(eta, lam, mu), Lattice(nt, nx), seed=7, n_chains=3, debug=True
    )
    chains.calibrate(5)
    out = chains.run(300, record_every=10)
    chains.check_state()
    counts = chains.counters()
    assert counts["step_accepted"] > 1000 and counts["l_accepted"] > 100  # the state really moved
    # every stored configuration is closed and the kernel's own measurement is right
    cfgs = out.configs.reshape(-1, 4, nt, nx)
    obs = measure(cfgs, PhysicsParams(eta, lam, mu), check_closed=True)
    kernel = out.observables.reshape(-1, 3)
    np.testing.assert_allclose(kernel[:, 0], obs["n"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(kernel[:, 1], obs["phi2"], rtol=1e-12)
    np.testing.assert_allclose(kernel[:, 2], obs["phi4"], rtol=1e-12)
    # the per-sweep series agrees with the recorded configurations at the recorded sweeps
    np.testing.assert_array_equal(out.series[:, 9::10, :], out.observables)


def test_table_growth_does_not_change_the_chain() -> None:
    """Starting from a tiny table (many NEED_GROW returns) gives exactly the same trajectory."""
    params, lattice = PhysicsParams(4.01, 1.0, 1.5), Lattice(6, 6)
    runs = []
    for f_max in (8, 512):
        table = WeightTable(params.eta, params.lam, f_max=f_max)
        chains = WormChains(params, lattice, seed=11, n_chains=2, table=table, worms_per_sweep=4)
        out = chains.run(200, record_every=20)
        runs.append((out, chains, table.f_max))
    (a, ca, fa), (b, cb, fb) = runs
    assert fa > 8 and fb == 512  # the small table had to grow
    assert np.array_equal(a.configs, b.configs)
    assert np.array_equal(a.series, b.series)
    assert ca.counters() == cb.counters()
    assert np.array_equal(ca.configs(), cb.configs())


def test_int16_state_widens_without_changing_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state is int16 while f_max - 4 fits and int32 after the table outgrows that; the values,
    and so the trajectory, are the same either way (here the limit is lowered to 12 so that an 8×8
    chain at mu = 1.5 crosses it, from a table of f_max = 8)."""
    import scalar_ml.physics.worm as worm

    params, lattice = PhysicsParams(4.01, 1.0, 1.5), Lattice(8, 8)

    def trajectory() -> tuple:
        table = WeightTable(params.eta, params.lam, f_max=8)
        chains = WormChains(params, lattice, seed=5, n_chains=2, table=table, worms_per_sweep=4)
        out = chains.run(300, record_every=30)
        chains.check_state()
        return out, chains

    narrow, narrow_chains = trajectory()
    assert narrow_chains._f.dtype == np.int16 and narrow_chains._nbr.dtype == np.uint16
    monkeypatch.setattr(worm, "_NARROW_MAX", 12)
    wide, wide_chains = trajectory()
    assert wide_chains.table.f_max - 4 > 12 and wide_chains._f.dtype == np.int32
    assert wide_chains._links.dtype == np.int32
    assert np.array_equal(narrow.configs, wide.configs) and narrow.configs.dtype == np.int32
    assert np.array_equal(narrow.series, wide.series)
    assert narrow_chains.counters() == wide_chains.counters()
    assert narrow_chains.configs().dtype == wide_chains.configs().dtype == np.int32


def test_counters_and_sweep_definition() -> None:
    chains = WormChains(PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 4), seed=3, n_chains=2)
    wps = chains.calibrate(10)
    before = chains.counters()
    chains.run(50, series=False)
    after = chains.counters()
    # one sweep = one l proposal per link + worms_per_sweep worm attempts (each starts a worm)
    assert after["l_proposed"] - before["l_proposed"] == 2 * 50 * 2 * 32
    assert after["start_proposed"] - before["start_proposed"] == 2 * 50 * wps
    assert after["stop_accepted"] == after["worms_completed"] == after["start_accepted"]
    rates = chains.acceptance()
    assert set(rates) == {"worm_start", "worm_step", "worm_stop", "l_update"}
    assert all(0 < r <= 1 for r in rates.values())


def test_different_seeds_differ_and_chains_are_independent() -> None:
    params, lattice = PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4)
    a = WormChains(params, lattice, seed=1, n_chains=2, worms_per_sweep=4).run(30, record_every=30)
    b = WormChains(params, lattice, seed=2, n_chains=2, worms_per_sweep=4).run(30, record_every=30)
    assert not np.array_equal(a.configs, b.configs)
    assert not np.array_equal(a.configs[0], a.configs[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"n_chains": 0}, "n_chains"),
        ({"amplitude": 0.0}, "amplitude"),
        ({"worms_per_sweep": 0}, "worms_per_sweep"),
        ({"table": WeightTable(4.0, 1.0)}, "weight table"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"seed": 1, "n_chains": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        WormChains(PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4), **args)
