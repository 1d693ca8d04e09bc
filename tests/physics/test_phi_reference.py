"""The dual worm sampler against an independent Monte Carlo in the field (phi) representation.

:mod:`scalar_ml.physics.phi_reference` samples complex phi_x with the real part of the action and
reweights with the phase e^{-i S_I}; it shares no code with the worm sampler. It is first checked
against the exact free field (lambda = 0), then used as a referee for the interacting theory
(lambda = 1) on small lattices where the average phase is >= 0.3. Both sides' errors are
autocorrelation-aware (Gamma-method over independent chains) and combined in quadrature.

The default points resolve shifts of about 0.02 in mu, 0.03 in eta or 0.05 in lambda on either side
(a deliberately shifted mu fails by many sigma, see ``test_comparison_detects_a_wrong_mu``).
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
REF_MEAS = 100_000  # per chain, one measurement per sweep: about 0.6 s on 4x4
DUAL_CONFIGS = 8_000
MIN_PHASE = 0.3  # below this the reweighting is too noisy to referee anything


@functools.cache
def _reference(
    eta: float, lam: float, mu: float, nt: int, nx: int, n_meas: int, seed: int
) -> PhiReferenceRun:
    return sample_phi_reference(
        PhysicsParams(eta, lam, mu), Lattice(nt, nx), n_meas, seed=seed, n_chains=REF_CHAINS
    )


@functools.cache
def _dual(
    eta: float, lam: float, mu: float, nt: int, nx: int, n_configs: int, seed: int
) -> Ensemble:
    return generate_ensemble(PhysicsParams(eta, lam, mu), Lattice(nt, nx), n_configs, seed=seed)


def _check_phase(ref: PhiReferenceRun, label: str) -> None:
    """Average phase large enough, and <sin S_I> = 0 (charge conjugation) within errors."""
    phase = ref.average_phase()
    assert phase.mean >= MIN_PHASE, f"{label}: average phase {phase.mean:.3f} < {MIN_PHASE}"
    sin = autocorrelation(ref.phase_sin)
    assert abs(sin.mean) <= N_SIGMA * sin.err + 1e-12, f"{label}: <sin S_I> = {sin}"


def _compare(ref: PhiReferenceRun, ens: Ensemble, label: str) -> None:
    """Dual <|phi|^2> and <n> within N_SIGMA combined errors of the reweighted reference."""
    _check_phase(ref, label)
    for name, pretty in (("phi2", "<|phi|^2>"), ("n", "<n>")):
        expected = ref.observable(name)
        measured = chain_stats(ens, name)
        if measured.err == 0.0 and expected.err == 0.0:
            # mu = 0 on a long lattice: no temporal winding ever appears (n = 0 in every dual
            # configuration) and the reference's numerator vanishes identically: both exactly 0
            assert measured.mean == expected.mean == 0.0, (
                f"{label} {pretty}: {measured}, {expected}"
            )
            continue
        assert_agrees(measured, expected.mean, f"{label} {pretty} dual vs phi", expected.err)


# ---- the reference itself: exact free field -------------------------------------------------

FREE_POINTS = [
    # eta, mu, nt, nx
    (4.5, 0.3, 4, 4),  # average phase 0.9
    (5.0, 0.8, 4, 6),  # large mu, Nt != Nx, average phase 0.41
    (5.0, 0.6, 2, 4),  # Nt = 2: S_I = 0 identically, the mu dependence sits in S_R and n alone
]


@pytest.mark.parametrize(("eta", "mu", "nt", "nx"), FREE_POINTS)
def test_reference_reproduces_free_field(eta: float, mu: float, nt: int, nx: int) -> None:
    ref = _reference(eta, 0.0, mu, nt, nx, REF_MEAS, 7)
    label = f"phi reference, free field {nt}x{nx} eta={eta} mu={mu}"
    _check_phase(ref, label)
    n_exact, phi2_exact = free_field_observables(eta, mu, nt, nx)
    assert_agrees(ref.observable("phi2"), phi2_exact, f"{label} <|phi|^2>")
    assert_agrees(ref.observable("n"), n_exact, f"{label} <n>")


def test_reference_is_deterministic_and_seeded() -> None:
    params, lattice = PhysicsParams(4.01, 1.0, 0.7), Lattice(4, 2)
    a = sample_phi_reference(params, lattice, 500, seed=5, n_chains=2, n_therm=100)
    b = sample_phi_reference(params, lattice, 500, seed=5, n_chains=2, n_therm=100)
    c = sample_phi_reference(params, lattice, 500, seed=6, n_chains=2, n_therm=100)
    for name in ("phi2", "n"):
        np.testing.assert_array_equal(a.numerators[name], b.numerators[name])
    np.testing.assert_array_equal(a.phase, b.phase)
    assert not np.array_equal(a.numerators["phi2"], c.numerators["phi2"])
    # the two chains of one run are independent streams
    assert not np.array_equal(a.phase[0], a.phase[1])


def test_reference_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="free theory"):
        sample_phi_reference(PhysicsParams(4.01, 0.0, 0.5), Lattice(4, 4), 10, seed=0)
    with pytest.raises(ValueError, match="n_meas"):
        sample_phi_reference(PhysicsParams(4.01, 1.0, 0.5), Lattice(4, 4), 1, seed=0)
    with pytest.raises(ValueError, match="step"):
        sample_phi_reference(PhysicsParams(4.01, 1.0, 0.5), Lattice(4, 4), 10, seed=0, step=0.0)


# ---- the referee: interacting theory (lambda = 1) ------------------------------------------

INTERACTING_POINTS = [
    # eta, mu, nt, nx; average phase <cos S_I> in the comment
    (4.01, 0.0, 4, 4),  # 1 (no sign problem)
    (4.01, 0.5, 4, 4),  # 0.80
    (4.01, 1.0, 4, 4),  # 0.45, above the (Nt = infinity) Silver Blaze onset 0.93
    (4.01, 1.3, 4, 4),  # 0.39
    (4.01, 1.3, 4, 2),  # 0.60, Nx = 2: both spatial links join the same two sites
    (4.01, 1.0, 2, 4),  # 1 (Nt = 2: S_I = 0)
    (4.25, 1.0, 4, 4),  # 0.45
    (4.25, 1.5, 4, 4),  # 0.37
]


@pytest.mark.parametrize(("eta", "mu", "nt", "nx"), INTERACTING_POINTS)
def test_dual_sampler_matches_phi_reference(eta: float, mu: float, nt: int, nx: int) -> None:
    ref = _reference(eta, 1.0, mu, nt, nx, REF_MEAS, 11)
    ens = _dual(eta, 1.0, mu, nt, nx, DUAL_CONFIGS, 11)
    _compare(ref, ens, f"{nt}x{nx} eta={eta} lam=1 mu={mu}")


def test_comparison_detects_a_wrong_mu() -> None:
    """The comparison has teeth: the dual at mu + 0.03, or the reference without reweighting, fail."""
    eta, mu, nt, nx = 4.01, 1.0, 4, 4
    ref = _reference(eta, 1.0, mu, nt, nx, REF_MEAS, 11)
    expected = ref.observable("n")
    shifted = chain_stats(_dual(eta, 1.0, mu + 0.03, nt, nx, DUAL_CONFIGS, 11), "n")
    sigma = np.hypot(expected.err, shifted.err)
    assert abs(shifted.mean - expected.mean) > 2 * N_SIGMA * sigma, (shifted, expected)
    # dropping the phase (the phase-quenched theory) is also many sigma off the dual value
    correct = chain_stats(_dual(eta, 1.0, mu, nt, nx, DUAL_CONFIGS, 11), "n")
    quenched = autocorrelation(ref.quenched["n"])
    sigma = np.hypot(quenched.err, correct.err)
    assert abs(quenched.mean - correct.mean) > 2 * N_SIGMA * sigma, (quenched, correct)


# ---- slow: tighter statistics and the 60x4 training lattice at mu = 0 -----------------------

SLOW_POINTS = [
    # eta, lam, mu, nt, nx, reference measurements per chain, dual configurations
    (4.5, 0.0, 0.3, 4, 4, 1_000_000, 0),  # the reference alone against the exact free field
    (4.01, 1.0, 0.0, 4, 4, 1_000_000, 200_000),
    (4.01, 1.0, 1.0, 4, 4, 1_000_000, 200_000),
    (4.25, 1.0, 1.0, 4, 4, 1_000_000, 200_000),
    (4.01, 1.0, 0.5, 8, 4, 400_000, 100_000),  # average phase 0.53
    (4.01, 1.0, 0.0, 60, 4, 200_000, 40_000),  # the training lattice (no sign problem at mu = 0)
]


@pytest.mark.slow
@pytest.mark.parametrize(("eta", "lam", "mu", "nt", "nx", "n_ref", "n_dual"), SLOW_POINTS)
def test_dual_sampler_matches_phi_reference_tight(
    eta: float, lam: float, mu: float, nt: int, nx: int, n_ref: int, n_dual: int
) -> None:
    ref = _reference(eta, lam, mu, nt, nx, n_ref, 23)
    label = f"{nt}x{nx} eta={eta} lam={lam} mu={mu} (tight)"
    if n_dual == 0:
        _check_phase(ref, label)
        n_exact, phi2_exact = free_field_observables(eta, mu, nt, nx)
        assert_agrees(ref.observable("phi2"), phi2_exact, f"{label} <|phi|^2> phi vs exact")
        assert_agrees(ref.observable("n"), n_exact, f"{label} <n> phi vs exact")
        return
    _compare(ref, _dual(eta, lam, mu, nt, nx, n_dual, 23), label)
