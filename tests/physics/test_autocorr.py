"""Γ-method autocorrelation analysis on AR(1) series with known tau_int."""

from __future__ import annotations

import numpy as np
import pytest
from physics_tolerances import N_SIGMA

from scalar_ml.physics.autocorr import autocorrelation, tau_int


def ar1(rng: np.random.Generator, rho: float, n: int, chains: int = 1) -> np.ndarray:
    """Stationary AR(1) chains a_{i+1} = rho a_i + eps_i, unit innovations, started in equilibrium."""
    out = np.empty((chains, n))
    eps = rng.normal(size=(chains, n))
    out[:, 0] = eps[:, 0] / np.sqrt(1 - rho**2)
    for i in range(1, n):
        out[:, i] = rho * out[:, i - 1] + eps[:, i]
    return out


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_single_chain_ar1(rng: np.random.Generator, rho: float) -> None:
    res = autocorrelation(ar1(rng, rho, 100_000)[0])
    exact = (1 + rho) / (2 * (1 - rho))
    assert res.window_ok
    assert abs(res.tau_int - exact) <= N_SIGMA * res.tau_int_err, (res, exact)
    # error of the mean: Var(mean) = 2 tau_int Var(a) / N with Var(a) = 1/(1 - rho^2)
    exact_err = np.sqrt(2 * exact / (1 - rho**2) / 100_000)
    assert res.err == pytest.approx(exact_err, rel=0.1)
    assert abs(res.mean) <= N_SIGMA * exact_err


def test_several_chains_are_combined(rng: np.random.Generator) -> None:
    rho = 0.8
    data = ar1(rng, rho, 5_000, chains=8) + 3.0
    res = autocorrelation(data)
    exact = (1 + rho) / (2 * (1 - rho))
    assert res.n == 40_000 and res.n_chains == 8
    assert abs(res.tau_int - exact) <= N_SIGMA * res.tau_int_err
    assert abs(res.mean - 3.0) <= N_SIGMA * res.err
    # a list of unequal chains works and chain boundaries are not bridged: concatenating chains
    # that are individually shuffled (tau = 1/2) must not create correlations
    parts = [rng.permutation(c) for c in data[:, :1000]]
    res_list = autocorrelation([parts[0], parts[1][:700], parts[2][:400]])
    assert res_list.n == 2100
    assert abs(res_list.tau_int - 0.5) <= N_SIGMA * max(res_list.tau_int_err, 0.02)
    # chains that disagree about the mean (not in equilibrium) are flagged by a large tau_int,
    # because all chains share one mean in Γ(t)
    shifted = [c + 5.0 * k for k, c in enumerate(rng.normal(size=(4, 2000)))]
    assert tau_int(shifted) > 10
    assert tau_int([c - c.mean() for c in shifted]) < 1


def test_constant_series() -> None:
    res = autocorrelation(np.full(100, 0.25))
    assert res.mean == 0.25 and res.err == 0.0 and res.tau_int == 0.5


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2, 2)), [np.zeros(1)], [], np.array([1.0, np.nan]), [np.zeros((2, 2))]]
)
def test_bad_input(bad: object) -> None:
    with pytest.raises(ValueError):
        autocorrelation(bad)
