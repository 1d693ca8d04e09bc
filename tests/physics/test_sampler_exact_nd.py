"""The sampler in 3D and 4D against the exact free field (lambda = 0, SPEC §3 momentum sums).

Errors are the autocorrelation-aware errors of the stored (decorrelated) series, chain by chain
(measured sizes: ``docs/dimensions.md``). Every point asserts its own power: the errors are small
enough that the exact <|phi|^2> at a 1 % larger eta, and the exact <n> at mu shifted by 0.1, lie
at least 2 N_SIGMA standard errors away (checked with the momentum sums); so a sampler off by
that much fails, and the negative control (those shifted exact values, compared as if they were
the truth) must fail the very assertion the test makes.
"""

from __future__ import annotations

import numpy as np
import pytest
from physics_tolerances import N_SIGMA, assert_agrees, chain_stats

from scalar_ml.physics import Lattice, PhysicsParams, free_field_observables, generate_ensemble
from scalar_ml.physics.autocorr import autocorrelation

#: Relative change of eta (in <|phi|^2>) and absolute change of mu (in <n>; towards 0 when
#: mu >= MU_SHIFT, so that the shifted theory exists) the tests must resolve, at 2 N_SIGMA.
ETA_SHIFT = 0.01
MU_SHIFT = 0.1

FAST_POINTS = [
    # eta, mu, shape, configurations; measured sigma_rel(|phi|^2) in the comment
    (8.5, 0.6, (4, 4, 4, 4), 2000),  # the SPEC §3 example (0.0047)
    (6.5, 0.4, (6, 4, 4), 3000),  # 3D, non-cubic, mu > 0 (0.0029)
    (6.3, 0.0, (4, 4, 4), 3000),  # 3D, mu = 0, cubic: the directions are equivalent (0.0045)
]
SLOW_POINTS = [
    (7.0, 0.8, (3, 4, 5), 8000),  # Nt < Nx, three different extents, large mu
    (8.3, 0.3, (4, 3, 3, 2), 8000),  # 4D non-cubic, an extent 2
    (8.2, 0.0, (3, 3, 3, 3), 8000),  # 4D, mu = 0
    (6.5, 0.3, (8, 8, 8), 4000),  # 3D 8^3 (the training lattice of the 3D study), gap 0.41
    (8.5, 0.6, (4, 4, 4, 4), 20000),  # the SPEC example, tight
]


def _check_free_field(eta: float, mu: float, shape: tuple[int, ...], n_configs: int) -> None:
    ens = generate_ensemble(PhysicsParams(eta, 0.0, mu), Lattice(*shape), n_configs, seed=2024)
    n_exact, phi2_exact = free_field_observables(eta, mu, shape=shape)
    label = f"free field {'x'.join(map(str, shape))} eta={eta} mu={mu}"
    n, phi2 = chain_stats(ens, "n"), chain_stats(ens, "phi2")
    # power: a 1 % larger eta, mu shifted by 0.1: at least 2 N_SIGMA sigma away
    _, phi2_shift = free_field_observables(eta * (1 + ETA_SHIFT), mu, shape=shape)
    mu_shift = mu - MU_SHIFT if mu >= MU_SHIFT else mu + MU_SHIFT
    n_shift, _ = free_field_observables(eta, mu_shift, shape=shape)
    assert abs(phi2_shift - phi2_exact) >= 2 * N_SIGMA * phi2.err, (label, phi2)
    assert abs(n_shift - n_exact) >= 2 * N_SIGMA * n.err, (label, n)
    # the test
    assert_agrees(phi2, phi2_exact, f"{label} <|phi|^2>")
    assert_agrees(n, n_exact, f"{label} <n>")
    # negative control: the shifted exact values, taken for the truth, fail the same assertion
    with pytest.raises(AssertionError):
        assert_agrees(phi2, phi2_shift, f"{label} <|phi|^2> vs shifted")
    with pytest.raises(AssertionError):
        assert_agrees(n, n_shift, f"{label} <n> vs shifted")
    # the stored configurations are decorrelated (tau_int of the stored series ~ 1/2)
    assert phi2.tau_int < 1.0 and n.tau_int < 1.0
    if mu == 0.0 and len(set(shape)) == 1:
        _check_equivalent_directions(ens, label)


def _check_equivalent_directions(ens, label: str) -> None:
    """At mu = 0 on a cubic lattice every direction is equivalent: <Σ_x |k_ν|> agree within
    errors (a neighbour table wrong on one axis would break this)."""
    d = ens.configs.ndim - 2
    lengths = ens.meta["chain_lengths"]
    flux = np.abs(ens.configs[:, :d]).sum(axis=tuple(range(2, 2 + d))).astype(float)  # (N, d)
    per_dir = [autocorrelation(np.split(flux[:, nu], np.cumsum(lengths)[:-1])) for nu in range(d)]
    mean = np.mean([r.mean for r in per_dir])
    for nu, r in enumerate(per_dir):
        assert abs(r.mean - mean) <= N_SIGMA * r.err, (label, nu, [p.mean for p in per_dir])


@pytest.mark.parametrize(("eta", "mu", "shape", "n_configs"), FAST_POINTS)
def test_free_field_exact_nd(eta: float, mu: float, shape: tuple[int, ...], n_configs: int) -> None:
    _check_free_field(eta, mu, shape, n_configs)


@pytest.mark.slow
@pytest.mark.parametrize(("eta", "mu", "shape", "n_configs"), SLOW_POINTS)
def test_free_field_exact_nd_more_shapes(
    eta: float, mu: float, shape: tuple[int, ...], n_configs: int
) -> None:
    _check_free_field(eta, mu, shape, n_configs)


def test_spec_values_in_4d() -> None:
    """SPEC §3: 4^4, eta = 8.5, mu = 0.6: <|phi|^2> = 0.165131, <n> = 0.040277."""
    n, phi2 = free_field_observables(8.5, 0.6, shape=(4, 4, 4, 4))
    assert (round(phi2, 6), round(n, 6)) == (0.165131, 0.040277)
