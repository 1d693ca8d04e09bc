"""The sampler against exact results: free field (lambda = 0) and <n> = 0 at mu = 0.

Errors are the autocorrelation-aware errors of the stored (decorrelated) series, chain by chain.
"""

from __future__ import annotations

import pytest
from physics_tolerances import N_SIGMA, assert_agrees, chain_stats

from scalar_ml.physics import Lattice, PhysicsParams, free_field_observables, generate_ensemble

FREE_POINTS = [
    # eta, mu, nt, nx
    (4.5, 0.3, 8, 8),  # the SPEC example
    (4.5, 0.0, 6, 4),  # mu = 0, Nt != Nx
    (4.2, 0.2, 4, 4),  # close to the free-theory limit eta - 2 - 2 cosh(mu) = 0.16
    (5.0, 0.8, 4, 6),  # Nt < Nx, large mu
]


@pytest.mark.parametrize(("eta", "mu", "nt", "nx"), FREE_POINTS)
def test_free_field_exact(eta: float, mu: float, nt: int, nx: int) -> None:
    ens = generate_ensemble(PhysicsParams(eta, 0.0, mu), Lattice(nt, nx), 4000, seed=2024)
    n_exact, phi2_exact = free_field_observables(eta, mu, nt, nx)
    label = f"free field {nt}x{nx} eta={eta} mu={mu}"
    n = chain_stats(ens, "n")
    phi2 = chain_stats(ens, "phi2")
    assert_agrees(phi2, phi2_exact, f"{label} <|phi|^2>")
    if mu == 0.0:
        assert abs(n.mean) <= N_SIGMA * n.err
    else:
        assert_agrees(n, n_exact, f"{label} <n>")
    # the stored configurations are decorrelated (tau_int of the stored series ~ 1/2)
    assert phi2.tau_int < 1.0 and n.tau_int < 1.0


def test_charge_vanishes_at_zero_mu_interacting() -> None:
    # Nt = 4, Nx = 8: short temporal windings, so about 10 % of the configurations carry charge
    ens = generate_ensemble(PhysicsParams(4.01, 1.0, 0.0), Lattice(4, 8), 4000, seed=99)
    n = chain_stats(ens, "n")
    assert abs(n.mean) <= N_SIGMA * n.err, (n.mean, n.err)
    # charge conjugation symmetry: as many positive as negative windings (binomial errors)
    n_pos, n_neg = int((ens.n > 0).sum()), int((ens.n < 0).sum())
    assert n_pos + n_neg > 100, "too few winding configurations for a meaningful test"
    assert abs(n_pos - n_neg) <= N_SIGMA * (n_pos + n_neg) ** 0.5, (n_pos, n_neg)
