"""The worm's two-point function and the charged-state energy (scalar_ml.physics.spectrum).

Exact check: for the free field the zero-momentum propagator is
G(tau) = (1/N_0) sum_{p_0} e^{i p_0 tau} / (eta - 2(d-1) - 2 cos p_0) and the energy of the
lightest charged state is E = arccosh((eta - 2(d-1)) / 2) on an infinitely long lattice (the
cosh form of the effective energy makes it exact on a periodic one)."""

from __future__ import annotations

import numpy as np
import pytest
from physics_tolerances import N_SIGMA

from scalar_ml.physics import Lattice, PhysicsParams
from scalar_ml.physics.spectrum import charged_state_energy, effective_energy
from scalar_ml.physics.worm_nd import WormChainsND


def _free_propagator(eta: float, dims: int, nt: int) -> np.ndarray:
    p = 2 * np.pi * np.arange(nt) / nt
    return np.array(
        [np.real(np.sum(np.exp(1j * p * t) / (eta - 2 * (dims - 1) - 2 * np.cos(p)))) / nt
         for t in range(nt)]
    )  # fmt: skip


def test_effective_energy_of_a_cosh() -> None:
    nt = 12
    corr = 3.0 * np.cosh(0.7 * (nt / 2 - np.arange(nt)))
    np.testing.assert_allclose(effective_energy(corr), 0.7, rtol=1e-9)
    assert np.isnan(effective_energy(np.ones(nt))).all()  # no decay: undefined


def test_correlator_does_not_change_the_chain() -> None:
    params, lattice = PhysicsParams(6.01, 1.0, 0.4), Lattice(6, 4, 3)
    runs = []
    for correlator in (False, True):
        chains = WormChainsND(params, lattice, seed=3, n_chains=2, correlator=correlator)
        chains.calibrate(5)
        runs.append((chains.run(50, record_every=10), chains))
    (a, ca), (b, cb) = runs
    assert np.array_equal(a.configs, b.configs) and ca.counters() == cb.counters()
    assert ca.time_correlator.shape == (2, 0) and cb.time_correlator.shape == (2, 6)
    # one count per worm proposal made while a worm was open afterwards
    assert 0 < cb.time_correlator.sum() <= cb.counters()["worm_proposals"]


@pytest.mark.parametrize(("eta", "shape"), [(6.5, (12, 4, 4)), (8.6, (10, 3, 3, 3))])
def test_free_field_propagator_and_energy(eta: float, shape: tuple[int, ...]) -> None:
    dims, nt = len(shape), shape[0]
    res = charged_state_energy(
        PhysicsParams(eta, 0.0, 0.0), Lattice(*shape), seed=5, n_chains=4, n_blocks=10,
        sweeps_per_block=600, tau_min=1,
    )  # fmt: skip
    exact = _free_propagator(eta, dims, nt)
    exact /= exact[0]
    dev = (res.correlator[1:] - exact[1:]) / res.correlator_err[1:]
    assert np.all(np.abs(dev) <= N_SIGMA), dev
    e_exact = float(np.arccosh((eta - 2 * (dims - 1)) / 2))
    # power: the energy at eta + 0.1 is at least 2 N_SIGMA errors away
    e_shift = float(np.arccosh((eta + 0.1 - 2 * (dims - 1)) / 2))
    assert abs(e_shift - e_exact) >= 2 * N_SIGMA * res.energy_err, res.energy_err
    assert abs(res.energy - e_exact) <= N_SIGMA * res.energy_err, (res.energy, e_exact)
    assert abs(res.energy - e_shift) > N_SIGMA * res.energy_err  # negative control


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="3D or 4D"):
        charged_state_energy(PhysicsParams(4.5, 0.0, 0.0), Lattice(8, 8), seed=1)
    with pytest.raises(ValueError, match="tau_min"):
        charged_state_energy(PhysicsParams(6.5, 0.0, 0.0), Lattice(8, 4, 4), seed=1, tau_min=4)
    with pytest.raises(ValueError, match="tau_max"):
        charged_state_energy(PhysicsParams(6.5, 0.0, 0.0), Lattice(8, 4, 4), seed=1, tau_max=9)
    with pytest.raises(ValueError, match="n_blocks"):
        charged_state_energy(PhysicsParams(6.5, 0.0, 0.0), Lattice(8, 4, 4), seed=1, n_blocks=1)
