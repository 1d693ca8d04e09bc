"""The dual worm sampler in 3D (and 4D) against the independent phi-representation Monte Carlo.

As ``test_phi_reference.py`` in 2D: :mod:`scalar_ml.physics.phi_reference` samples the complex
field with the real part of the action (now with d - 1 spatial hopping terms) and reweights with
the phase; it shares no code with the worm sampler. It is checked against the exact 3D free field,
then referees the interacting theory (eta = 6.01 = 2d + 0.01, lambda = 1) on small lattices where
the average phase is >= 0.3, and at mu = 0 on a larger one. Errors are autocorrelation-aware on both
sides and combined in quadrature. Power and negative control:
``test_comparison_in_3d_detects_a_wrong_mu`` shows that the dual sampler at mu + 0.03 misses the
reference by more than 2 N_SIGMA, and the unreweighted reference misses the dual sampler.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from physics_tolerances import N_SIGMA, assert_agrees, chain_stats

from scalar_ml.physics import (
    Ensemble,
    Lattice,
    PhiReferenceRun,
    PhysicsParams,
    autocorrelation,
    free_field_observables,
    generate_ensemble,
    sample_phi_reference,
)

REF_CHAINS = 4
REF_MEAS = 100_000  # per chain, one measurement per sweep: about 0.3 s on 3^3
DUAL_CONFIGS = 8_000
MIN_PHASE = 0.3  # below this the reweighting is too noisy to referee anything


@functools.cache
def _reference(
    eta: float, lam: float, mu: float, shape: tuple[int, ...], n_meas: int, seed: int
) -> PhiReferenceRun:
    return sample_phi_reference(
        PhysicsParams(eta, lam, mu), Lattice(*shape), n_meas, seed=seed, n_chains=REF_CHAINS
    )


@functools.cache
def _dual(
    eta: float, lam: float, mu: float, shape: tuple[int, ...], n_configs: int, seed: int
) -> Ensemble:
    return generate_ensemble(PhysicsParams(eta, lam, mu), Lattice(*shape), n_configs, seed=seed)


def _check_phase(ref: PhiReferenceRun, label: str) -> None:
    phase = ref.average_phase()
    assert phase.mean >= MIN_PHASE, f"{label}: average phase {phase.mean:.3f} < {MIN_PHASE}"
    sin = autocorrelation(ref.phase_sin)
    assert abs(sin.mean) <= N_SIGMA * sin.err + 1e-12, f"{label}: <sin S_I> = {sin}"


def _compare(ref: PhiReferenceRun, ens: Ensemble, label: str) -> None:
    _check_phase(ref, label)
    for name, pretty in (("phi2", "<|phi|^2>"), ("n", "<n>")):
        expected = ref.observable(name)
        measured = chain_stats(ens, name)
        if measured.err == 0.0 and expected.err == 0.0:
            # mu = 0 on a long lattice: no winding at all, and the reference's numerator is 0
            assert measured.mean == expected.mean == 0.0, (label, measured, expected)
            continue
        assert_agrees(measured, expected.mean, f"{label} {pretty} dual vs phi", expected.err)


def _name(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def test_reference_reproduces_the_3d_free_field() -> None:
    eta, mu, shape = 6.5, 0.3, (4, 2, 2)  # average phase 0.92
    ref = _reference(eta, 0.0, mu, shape, REF_MEAS, 7)
    label = f"phi reference, free field {_name(shape)} eta={eta} mu={mu}"
    _check_phase(ref, label)
    n_exact, phi2_exact = free_field_observables(eta, mu, shape=shape)
    assert_agrees(ref.observable("phi2"), phi2_exact, f"{label} <|phi|^2>")
    assert_agrees(ref.observable("n"), n_exact, f"{label} <n>")


INTERACTING_POINTS = [
    # eta, mu, shape; average phase <cos S_I> in the comment (measured)
    (6.01, 0.5, (3, 3, 3)),  # 0.86
    (6.01, 1.0, (4, 2, 2)),  # 0.56
]


@pytest.mark.parametrize(("eta", "mu", "shape"), INTERACTING_POINTS)
def test_dual_sampler_matches_phi_reference_3d(
    eta: float, mu: float, shape: tuple[int, ...]
) -> None:
    ref = _reference(eta, 1.0, mu, shape, REF_MEAS, 11)
    ens = _dual(eta, 1.0, mu, shape, DUAL_CONFIGS, 11)
    _compare(ref, ens, f"{_name(shape)} eta={eta} lam=1 mu={mu}")


def test_comparison_in_3d_detects_a_wrong_mu() -> None:
    """The comparison has teeth: the dual at mu + 0.03, or the unreweighted reference, fail."""
    eta, mu, shape = 6.01, 1.0, (4, 2, 2)
    ref = _reference(eta, 1.0, mu, shape, REF_MEAS, 11)
    expected = ref.observable("n")
    shifted = chain_stats(_dual(eta, 1.0, mu + 0.03, shape, DUAL_CONFIGS, 11), "n")
    sigma = np.hypot(expected.err, shifted.err)
    assert abs(shifted.mean - expected.mean) > 2 * N_SIGMA * sigma, (shifted, expected)
    # dropping the phase (the phase-quenched theory) fails too (measured: 6.7 sigma off)
    correct = chain_stats(_dual(eta, 1.0, mu, shape, DUAL_CONFIGS, 11), "n")
    quenched = autocorrelation(ref.quenched["n"])
    sigma = np.hypot(quenched.err, correct.err)
    assert abs(quenched.mean - correct.mean) > N_SIGMA * sigma, (quenched, correct)


SLOW_POINTS = [
    # eta, lam, mu, shape, reference measurements per chain, dual configurations
    (6.01, 1.0, 0.5, (3, 3, 3), 1_000_000, 100_000),  # tight
    (6.01, 1.0, 1.0, (4, 3, 2), 1_000_000, 100_000),  # three extents, average phase 0.44
    (6.01, 1.0, 1.0, (2, 2, 2), 400_000, 40_000),  # Nt = 2: S_I = 0 identically
    (6.25, 1.0, 1.0, (4, 2, 2), 1_000_000, 100_000),
    (6.01, 1.0, 0.0, (6, 6, 6), 200_000, 40_000),  # a larger lattice without sign problem
    (8.01, 1.0, 0.5, (4, 2, 2, 2), 400_000, 40_000),  # 4D, average phase 0.79
]


@pytest.mark.slow
@pytest.mark.parametrize(("eta", "lam", "mu", "shape", "n_ref", "n_dual"), SLOW_POINTS)
def test_dual_sampler_matches_phi_reference_nd_tight(
    eta: float, lam: float, mu: float, shape: tuple[int, ...], n_ref: int, n_dual: int
) -> None:
    ref = _reference(eta, lam, mu, shape, n_ref, 23)
    _compare(ref, _dual(eta, lam, mu, shape, n_dual, 23), f"{_name(shape)} eta={eta} mu={mu}")
