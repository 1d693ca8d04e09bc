"""The lifted worm against the exact free field, and the stages of ``generate_ensemble``.

- The lifted worm kernel samples the exact free field to a few 1e-3 relative on every sweep's
  measurement, and the same comparison flags the length-biased proposal-quota sweeps (used only for
  calibration) by many sigma: the negative control that shows the comparison's power.
- An explicit ``n_therm`` calibrates first (the calibration is the automatic path's, sweep for
  sweep) and so costs about ``4V`` worm proposals per sweep, not the provisional ``V/4`` attempts.
- The pilot's records are reused: spaced at least as far apart as the production, after at least
  20 tau of thermalisation; the record buffer keeps a regular grid when it thins itself.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from physics_tolerances import N_SIGMA, assert_agrees

from scalar_ml.physics import Lattice, PhysicsParams, free_field_observables, generate_ensemble
from scalar_ml.physics import ensemble as ensemble_mod
from scalar_ml.physics.autocorr import autocorrelation
from scalar_ml.physics.worm import ChainRun, WormChains

FREE_POINTS = [
    # eta, mu, nt, nx
    (4.5, 0.0, 4, 4),
    (4.5, 0.3, 8, 8),  # the SPEC example
    (5.0, 0.8, 4, 6),  # large mu: long temporal windings
    (5.0, 0.6, 2, 4),  # Nt = 2: two temporal links join the same two sites
]
#: Stated power of the free-field checks (physics_tolerances.check_mc): the largest accepted error
#: of <|phi|^2> and <n> relative to the exact value, and of <n> in absolute terms at mu = 0.
#: 80000 sweeps x 4 chains measure them to at most 0.31 %, 1.1 % and 2.3e-4 at these points.
PHI2_REL_SIGMA, N_REL_SIGMA, N_ABS_SIGMA = 0.004, 0.015, 5e-4


def _series(eta: float, mu: float, nt: int, nx: int, quota: int | None) -> np.ndarray:
    chains = WormChains(PhysicsParams(eta, 0.0, mu), Lattice(nt, nx), seed=5, n_chains=4)
    chains.calibrate(20)
    chains.run(500, series=False)
    out = chains.run(80_000, proposal_quota=quota)
    assert out.series is not None
    return out.series


@pytest.mark.parametrize(("eta", "mu", "nt", "nx"), FREE_POINTS)
def test_lifted_worm_matches_exact_free_field(eta: float, mu: float, nt: int, nx: int) -> None:
    n_exact, phi2_exact = free_field_observables(eta, mu, nt, nx)
    label = f"lifted worm, free field {nt}x{nx} eta={eta} mu={mu}"
    series = _series(eta, mu, nt, nx, quota=None)
    phi2 = autocorrelation(series[:, :, 1])
    n = autocorrelation(series[:, :, 0])
    assert_agrees(phi2, phi2_exact, f"{label} <|phi|^2>", max_rel_sigma=PHI2_REL_SIGMA)
    if mu == 0.0:
        assert_agrees(n, 0.0, f"{label} <n>", max_sigma=N_ABS_SIGMA)
    else:
        assert_agrees(n, n_exact, f"{label} <n>", max_rel_sigma=N_REL_SIGMA)
    # negative control: sweeps that end after a proposal quota pick length-biased times
    biased = _series(eta, mu, nt, nx, quota=4 * nt * nx)
    devs = [
        abs(autocorrelation(biased[:, :, i]).mean - exact) / autocorrelation(biased[:, :, i]).err
        for i, exact in ((0, n_exact), (1, phi2_exact))
        if not (i == 0 and mu == 0.0)
    ]
    assert max(devs) > 2 * N_SIGMA, f"{label}: the biased kernel is not detected ({devs})"


def _quiet_ensemble(*args, **kwargs) -> ensemble_mod.Ensemble:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short explicit n_therm: "shorter than 20 tau_int"
        return generate_ensemble(*args, **kwargs)


def test_explicit_n_therm_calibrates_first() -> None:
    """Dense point: worms are ~V proposals long, so V/4 attempts per sweep would cost ~50x more."""
    params, lattice = PhysicsParams(4.01, 1.0, 1.5), Lattice(16, 16)
    auto = _quiet_ensemble(params, lattice, 16, seed=3, n_chains=2)
    explicit = _quiet_ensemble(params, lattice, 16, seed=3, n_chains=2, n_therm=100)
    meta = explicit.meta
    assert meta["n_therm"] == 100 and not meta["n_therm_auto"]
    assert meta["calibration_sweeps"] == auto.meta["calibration_sweeps"] > 0
    assert meta["worms_per_sweep"] == auto.meta["worms_per_sweep"] < lattice.volume // 16
    per_site = meta["worm_proposals"] / (2 * meta["sweeps_per_chain"] * lattice.volume)
    assert 2.0 < per_site < 8.0, per_site  # about 4 worm proposals per site and sweep


def test_pilot_records_are_reused_at_a_measured_spacing() -> None:
    ens = generate_ensemble(PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8), 64, seed=4, n_chains=4)
    meta = ens.meta
    tau = max(meta["tau_int"]["n"], meta["tau_int"]["phi2"])
    assert meta["configs_from_pilot"] > 0
    assert meta["sweeps_between_pilot"] % meta["pilot_record_every"] == 0
    assert meta["sweeps_between_pilot"] >= meta["sweeps_between"] >= 2 * tau
    assert meta["n_therm"] >= 20 * tau
    assert meta["pilot_sweeps"] >= 30 * tau
    assert set(meta["cpu_timings"]) >= {"calibration_s", "therm_s", "pilot_s", "production_s"}


def _fake_run(sweeps: np.ndarray) -> ChainRun:
    """Two chains whose recorded configurations carry their sweep number in k_t[0, 0]."""
    configs = np.zeros((2, sweeps.size, 4, 2, 2), dtype=np.int32)
    configs[:, :, 0, 0, 0] = sweeps
    return ChainRun(series=None, configs=configs, observables=np.zeros((2, sweeps.size, 3)))


def test_record_buffer_thins_to_a_grid_and_selects_spaced_records() -> None:
    one = 2 * 4 * 4 * 4  # bytes of one record of both chains
    records = ensemble_mod._Records(origin=10, stride=1, max_bytes=12 * one)
    length = 10
    for n in (5, 7, 9):  # three runs, recorded every sweep of the current grid
        first, every = records.first_record(length), records.stride
        sweeps = length + first + every * np.arange((n - first) // every + 1)
        records.add(length, first, every, _fake_run(sweeps))
        length += n
        assert records.nbytes <= 12 * one
        assert np.all((records.sweeps - 10) % records.stride == 0)
    assert records.stride == 2 and records.sweeps.tolist() == list(range(12, 32, 2))
    records.drop_before(15)
    start = records.first_after(15)
    assert start == 16 and records.count(start, 6, limit=10) == 3
    configs, _, sweeps = records.select(start, 6, limit=2)
    assert sweeps.tolist() == [16, 22]
    assert configs[:, :, 0, 0, 0].tolist() == [[16, 22], [16, 22]]


def test_progress_bars_do_not_change_the_data() -> None:
    """Progress bars split the kernel calls into chunks; the chains and decisions are the same."""
    params, lattice = PhysicsParams(4.01, 1.0, 1.2), Lattice(8, 4)
    plain = generate_ensemble(params, lattice, 50, seed=3, n_chains=4)
    shown = generate_ensemble(params, lattice, 50, seed=3, n_chains=4, progress=True)
    assert np.array_equal(plain.configs, shown.configs)
    assert plain.meta["checkpoints"] == shown.meta["checkpoints"]
