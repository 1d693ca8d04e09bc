"""Exact free-field values: SPEC example and an independent position-space computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalar_ml.physics.free_field import free_field_observables


def position_space(eta: float, mu: float, nt: int, nx: int) -> tuple[float, float]:
    """<n>, <|phi|^2> from the V x V matrix M of S = phi^dagger M phi (no Fourier transform).

    Z ∝ 1/det M, so <|phi|^2> = tr(M^-1)/V and <n> = (1/V) d ln Z/d mu = -(1/V) tr(M^-1 dM/dmu).
    """
    v = nt * nx
    m = np.zeros((v, v))
    dm = np.zeros((v, v))

    def idx(t: int, x: int) -> int:
        return (t % nt) * nx + (x % nx)

    for t in range(nt):
        for x in range(nx):
            i = idx(t, x)
            m[i, i] += eta
            # -e^{mu} phi*_x phi_{x+t}, -e^{-mu} phi*_x phi_{x-t}, -phi*_x phi_{x±x}
            m[i, idx(t + 1, x)] -= math.exp(mu)
            dm[i, idx(t + 1, x)] -= math.exp(mu)
            m[i, idx(t - 1, x)] -= math.exp(-mu)
            dm[i, idx(t - 1, x)] += math.exp(-mu)
            m[i, idx(t, x + 1)] -= 1.0
            m[i, idx(t, x - 1)] -= 1.0
    inv = np.linalg.inv(m)
    return float(-np.trace(inv @ dm) / v), float(np.trace(inv) / v)


def test_spec_example() -> None:
    n, phi2 = free_field_observables(4.5, 0.3, nt=8, nx=8)
    assert round(phi2, 6) == 0.321051
    assert round(n, 6) == 0.006530


@pytest.mark.parametrize(
    ("eta", "mu", "nt", "nx"),
    [(4.5, 0.3, 8, 8), (4.5, 0.0, 6, 4), (4.2, 0.2, 4, 4), (5.0, 0.8, 4, 6), (6.0, 1.2, 2, 3)],
)
def test_momentum_sum_equals_position_space(eta: float, mu: float, nt: int, nx: int) -> None:
    n, phi2 = free_field_observables(eta, mu, nt, nx)
    n_ref, phi2_ref = position_space(eta, mu, nt, nx)
    assert n == pytest.approx(n_ref, rel=1e-10, abs=1e-13)
    assert phi2 == pytest.approx(phi2_ref, rel=1e-10)
    if mu == 0.0:
        assert abs(n) < 1e-14


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((4.01, 0.5, 8, 8), "does not exist"),
        ((4.0, 0.0, 8, 8), "does not exist"),
        ((4.5, 0.3, 1, 8), "nt"),
        ((4.5, 0.3, 8, 2.5), "nx"),
        ((float("nan"), 0.3, 8, 8), "eta"),
    ],
)
def test_bad_input(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        free_field_observables(*args)
