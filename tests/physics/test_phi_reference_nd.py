"""The dual worm sampler in 3D (and 4D) against the independent phi-representation Monte Carlo.

As ``test_phi_reference.py`` in 2D: :mod:`scalar_ml.physics.phi_reference` samples the complex
field with the real part of the action (with d - 1 spatial hopping terms) and reweights with the
phase; it shares no code with the worm sampler. It is checked against the exact 3D free field, then
referees the interacting theory at eta = 6.01 = 2d + 0.01 (the 2D points' m^2), lambda = 1, on
small lattices where the average phase is >= 0.3, at mu = 0 on a larger one, and in 4D.

Power and negative controls (``physics_tolerances``): every comparison asserts its stated maximum
combined error and fails on the same data shifted by ±8 times it. The default rows resolve
<|phi|^2> to 4-5 % and <n> to 10-20 % (stated per row); the ``slow`` rows resolve <|phi|^2> to 1 %
and <n> to 2-5 %. ``test_comparison_in_3d_detects_a_wrong_mu`` shows in addition that the dual
sampler at mu + 0.03, and the reference without its phase, miss. Sizes:
``benchmarks/power_sizing.py --table interacting-nd``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from mc_helpers import DualSeries, check_phase, compare_with_reference, dual_series, reference_run
from physics_tolerances import CI_ONLY, N_SIGMA, McPoint, assert_agrees

from scalar_ml.physics import PhiReferenceRun, autocorrelation, free_field_observables


@functools.cache
def _dual(point: McPoint, seed: int) -> DualSeries:
    return dual_series(point, seed)


def _reference(point: McPoint, seed: int) -> PhiReferenceRun:
    args = (point.eta, point.lam, point.mu, point.nt, point.nx, point.n_ref, seed)
    return reference_run(*args, extra_space=point.extra_space)


def test_reference_reproduces_the_3d_free_field() -> None:
    # average phase 0.92; <|phi|^2> resolved to 4 %, <n> = 0.057 to 15 %
    point = McPoint(6.5, 0.0, 0.3, 4, 2, 0, n_ref=120_000, phi2_rel_sigma=0.04 / 8,
                    n_rel_sigma=0.15 / 8, extra_space=(2,))  # fmt: skip
    ref = _reference(point, 7)
    label = f"phi reference, free field {point.id}"
    check_phase(ref, label)
    n_exact, phi2_exact = free_field_observables(point.eta, point.mu, shape=point.lattice.shape)
    assert_agrees(ref.observable("phi2"), phi2_exact, f"{label} <|phi|^2>", **point.power("phi2"))
    assert_agrees(ref.observable("n"), n_exact, f"{label} <n>", **point.power("n"))


INTERACTING_POINTS_ND = [
    # average phase 0.86; <|phi|^2> to 5 %, <n> = 0.066 to 20 %
    McPoint(6.01, 1.0, 0.5, 3, 3, 9600, n_ref=29_000, phi2_rel_sigma=0.05 / 8,
            n_rel_sigma=0.20 / 8, extra_space=(3,)),
    # average phase 0.56; <|phi|^2> to 5 %, <n> = 0.70 to 10 %
    McPoint(6.01, 1.0, 1.0, 4, 2, 9700, n_ref=83_000, phi2_rel_sigma=0.05 / 8,
            n_rel_sigma=0.10 / 8, extra_space=(2,)),
    # ---- slow ----------------------------------------------------------------------------------
    pytest.param(  # tight: <|phi|^2> to 1 %, <n> to 5 %
        McPoint(6.01, 1.0, 0.5, 3, 3, 150_000, n_ref=480_000, n_rel_sigma=0.05 / 8,
                extra_space=(3,)),
        marks=CI_ONLY, id="3x3x3-tight",
    ),
    pytest.param(  # three extents, average phase 0.44; <n> to 2 %
        McPoint(6.01, 1.0, 1.0, 4, 3, 130_000, n_ref=1_300_000, phi2_rel_sigma=0.012 / 8,
                n_rel_sigma=0.02 / 8, extra_space=(2,)),
        marks=CI_ONLY, id="4x3x2",
    ),
    pytest.param(  # Nt = 2: S_I = 0 identically; <|phi|^2> to 2 %, <n> to 4 %
        McPoint(6.01, 1.0, 1.0, 2, 2, 77_000, n_ref=570_000, phi2_rel_sigma=0.02 / 8,
                n_rel_sigma=0.04 / 8, extra_space=(2,)),
        marks=CI_ONLY, id="2x2x2",
    ),
    pytest.param(  # a larger lattice without sign problem: <|phi|^2> to 1 %
        McPoint(6.01, 1.0, 0.0, 6, 6, 6200, n_ref=18_000, n_abs_sigma=0.001 / 8,
                extra_space=(6,)),
        marks=CI_ONLY, id="6x6x6-mu0",
    ),
    pytest.param(  # 4D, average phase 0.79; <|phi|^2> to 2 %, <n> = 0.047 to 25 %
        McPoint(8.01, 1.0, 0.5, 4, 2, 44_000, n_ref=280_000, phi2_rel_sigma=0.02 / 8,
                n_rel_sigma=0.25 / 8, extra_space=(2, 2)),
        marks=CI_ONLY, id="4x2x2x2",
    ),
]  # fmt: skip


@pytest.mark.parametrize("point", INTERACTING_POINTS_ND, ids=lambda p: p.id)
def test_dual_sampler_matches_phi_reference_nd(point: McPoint) -> None:
    compare_with_reference(_reference(point, 11), _dual(point, 11), point, point.id)


def test_comparison_in_3d_detects_a_wrong_mu() -> None:
    """The dual at mu + 0.03, or the unreweighted reference, miss by more than N_SIGMA."""
    point = INTERACTING_POINTS_ND[1]  # 4x2x2, mu = 1.0
    expected = _reference(point, 11).observable("n")
    wrong = McPoint(6.01, 1.0, 1.03, 4, 2, point.n_configs, extra_space=(2,))
    shifted = _dual(wrong, 11).stats("n")
    sigma = np.hypot(expected.err, shifted.err)
    assert abs(shifted.mean - expected.mean) > 2 * N_SIGMA * sigma, (shifted, expected)
    # dropping the phase (the phase-quenched theory) fails too (measured: about 7 sigma off)
    correct = _dual(point, 11).stats("n")
    quenched = autocorrelation(_reference(point, 11).quenched["n"])
    sigma = np.hypot(quenched.err, correct.err)
    assert abs(quenched.mean - correct.mean) > N_SIGMA * sigma, (quenched, correct)
