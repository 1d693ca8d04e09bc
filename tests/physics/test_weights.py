"""W(f) tables: direct quadrature, the lambda = 0 closed form, the recursion, SPEC values, growth."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from physics_tolerances import W_RTOL
from scipy import integrate
from scipy.special import gammaln

from scalar_ml.physics.weights import WeightTable, log_weight

COUPLINGS = [(4.01, 1.0), (4.25, 1.0), (4.5, 0.0), (0.3, 7.0), (12.0, 0.02), (2.0, 1e-6)]


def log_w_scipy(f: int, eta: float, lam: float) -> float:
    """log W(f) by scipy.integrate.quad, split at the peak of the integrand (independent code)."""

    def phi(r: float) -> float:
        return (f + 1) * math.log(r) - eta * r * r - lam * r**4 if r > 0 else -math.inf

    # crude peak search (golden-section free: a dense grid is enough to centre the pieces)
    grid = np.linspace(1e-6, 10.0, 20001)
    r_star = grid[np.argmax([phi(r) for r in grid])]
    peak = phi(r_star)
    width = 1.0 / math.sqrt((f + 1) / r_star**2 + 2 * eta + 12 * lam * r_star**2)
    cuts = [0.0] + [r_star + k * width for k in range(-12, 13) if r_star + k * width > 0]
    total = 0.0
    for a, b in itertools.pairwise(cuts):
        total += integrate.quad(
            lambda r: math.exp(phi(r) - peak), a, b, epsabs=0, epsrel=2e-14, limit=200
        )[0]
    total += integrate.quad(
        lambda r: math.exp(phi(r) - peak), cuts[-1], np.inf, epsabs=0, epsrel=2e-14
    )[0]
    return peak + math.log(total)


@pytest.mark.parametrize(("eta", "lam"), COUPLINGS)
def test_log_weight_matches_direct_quadrature(eta: float, lam: float) -> None:
    fs = [0, 1, 2, 3, 4, 7, 16, 41, 100]
    ours = log_weight(np.array(fs), eta, lam)
    for f, value in zip(fs, ours, strict=True):
        ref = log_w_scipy(f, eta, lam)
        assert abs(value - ref) <= W_RTOL * 2, (f, eta, lam, value, ref)


@pytest.mark.parametrize("eta", [0.5, 4.01, 4.5, 30.0])
def test_lambda_zero_closed_form(eta: float) -> None:
    f = np.arange(0, 501)
    closed = gammaln(f / 2 + 1) - math.log(2) - (f / 2 + 1) * math.log(eta)
    ours = log_weight(f, eta, 0.0)
    assert np.all(np.abs(ours - closed) <= W_RTOL * np.maximum(1.0, np.abs(closed)))
    # the quadrature path (tiny lam) approaches the closed form continuously
    np.testing.assert_allclose(log_weight(f[:60], eta, 1e-13), closed[:60], rtol=0, atol=1e-9)


@pytest.mark.parametrize(("eta", "lam"), COUPLINGS)
def test_recursion_identity(eta: float, lam: float) -> None:
    """(f+2) W(f) = 2 eta W(f+2) + 4 lam W(f+4), checked relative to the left-hand side."""
    table = WeightTable(eta, lam)
    table.ensure(304)
    f = np.arange(0, 301)
    lw = table.log_w
    rhs = 2 * eta * np.exp(lw[f + 2] - lw[f]) + 4 * lam * np.exp(lw[f + 4] - lw[f])
    np.testing.assert_allclose(rhs, f + 2.0, rtol=20 * W_RTOL)


def test_spec_check_values() -> None:
    table = WeightTable(4.01, 1.0)
    w = {f: table.w(f) for f in (0, 1, 2, 4)}
    assert round(w[0], 8) == 0.11293311
    assert round(w[1], 8) == 0.04613298
    assert round(w[2], 8) == 0.02356911
    assert round(w[4], 8) == 0.00921048
    assert round(w[2] / w[0], 6) == 0.208700
    assert round(w[4] / w[2], 6) == 0.390786
    r2 = table.ratio(2)
    assert r2[0] == pytest.approx(w[2] / w[0], rel=1e-14)


def test_table_grows_on_demand_with_identical_values() -> None:
    small = WeightTable(4.01, 1.0, f_max=8)
    assert small.f_max == 8
    small.ensure(9)
    assert small.f_max == 16  # at least doubles
    small.ensure(150)
    assert small.f_max == 150
    assert small.w(400) > 0 and small.f_max >= 400  # w() grows the table itself
    big = WeightTable(4.01, 1.0, f_max=400)
    assert np.array_equal(small.log_w[:401], big.log_w)  # bit-identical whatever the history
    assert np.array_equal(small.ratio(2)[:399], big.ratio(2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": 0.0, "lam": 1.0}, "eta"),
        ({"eta": -1.0, "lam": 1.0}, "eta"),
        ({"eta": 4.0, "lam": -0.1}, "lam"),
        ({"eta": float("nan"), "lam": 1.0}, "eta"),
        ({"eta": 4.0, "lam": float("inf")}, "lam"),
        ({"eta": 4.0, "lam": 1.0, "f_max": 2}, "f_max"),
    ],
)
def test_bad_couplings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WeightTable(**kwargs)


def test_bad_f() -> None:
    with pytest.raises(ValueError, match="f must be >= 0"):
        log_weight(np.array([1, -2]), 4.0, 1.0)
    with pytest.raises(ValueError, match="integer"):
        log_weight(np.array([1.5]), 4.0, 1.0)
