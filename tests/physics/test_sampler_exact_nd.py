"""The sampler in 3D and 4D against the exact free field (lambda = 0, SPEC §3 momentum sums).

Power and negative controls as everywhere (``physics_tolerances``): every check asserts its stated
maximum error and fails on the same data shifted by ±8 times it. The default rows resolve a bias
of <|phi|^2> of 3-4 % (stated per row); the ``slow`` rows resolve 1 % (0.125 % errors), on a cube,
a hypercube and non-cubic shapes (an extent 2, three different extents). <n> of the free field is
small at these couplings and is resolved to what is stated per row. At mu = 0 on a cube every
direction is equivalent, which a neighbour table wrong on one axis would break (checked). Sizes:
``benchmarks/power_sizing.py --table free-nd`` (measured a = sigma sqrt(N), 15 % margin).
"""

from __future__ import annotations

import numpy as np
import pytest
from mc_helpers import DualSeries, dual_series
from physics_tolerances import CI_ONLY, N_SIGMA, McPoint, check_mc

from scalar_ml.physics import autocorrelation, free_field_observables, generate_ensemble
from scalar_ml.physics.params import Lattice, PhysicsParams

FREE_POINTS_ND = [
    # the SPEC §3 example, 4^4; <|phi|^2> resolved to 4 %, <n> = 0.040 to 25 %
    McPoint(8.5, 0.0, 0.6, 4, 4, 2400, phi2_rel_sigma=0.04 / 8, n_rel_sigma=0.25 / 8,
            extra_space=(4, 4)),
    # 3D, non-cubic, mu > 0: <|phi|^2> to 3 %, <n> = 0.013 to 40 %
    McPoint(6.5, 0.0, 0.4, 6, 4, 3700, phi2_rel_sigma=0.03 / 8, n_rel_sigma=0.4 / 8,
            extra_space=(4,)),
    # 3D cube, mu = 0: <n> = 0 exactly, about 10 % of the configurations wind
    McPoint(6.3, 0.0, 0.0, 4, 4, 3400, phi2_rel_sigma=0.04 / 8, n_abs_sigma=0.0064 / 8,
            extra_space=(4,)),
    # ---- slow: <|phi|^2> to 1 % -----------------------------------------------------------------
    pytest.param(
        McPoint(8.5, 0.0, 0.6, 4, 4, 39_000, n_rel_sigma=0.06 / 8, extra_space=(4, 4)),
        marks=CI_ONLY, id="4x4x4x4-spec-tight",
    ),
    pytest.param(  # Nt < Nx, three different extents, large mu; <n> = 0.13 to 4 %
        McPoint(7.0, 0.0, 0.8, 3, 4, 62_000, n_rel_sigma=0.04 / 8, extra_space=(5,)),
        marks=CI_ONLY, id="3x4x5",
    ),
    pytest.param(  # 4D, non-cubic, an extent 2; <n> = 0.034 to 8 %
        McPoint(8.3, 0.0, 0.3, 4, 3, 130_000, n_rel_sigma=0.08 / 8, extra_space=(3, 2)),
        marks=CI_ONLY, id="4x3x3x2",
    ),
    pytest.param(  # 4D hypercube, mu = 0
        McPoint(8.2, 0.0, 0.0, 3, 3, 89_000, n_abs_sigma=0.002 / 8, extra_space=(3, 3)),
        marks=CI_ONLY, id="3x3x3x3-mu0",
    ),
]  # fmt: skip


def _id(point: McPoint) -> str:
    return point.id


@pytest.mark.parametrize("point", FREE_POINTS_ND, ids=_id)
def test_free_field_exact_nd(point: McPoint) -> None:
    dual = dual_series(point, seed=2024)
    n_exact, phi2_exact = free_field_observables(point.eta, point.mu, shape=point.lattice.shape)
    label = f"free field {point.id}"
    check_mc(dual.data("phi2"), phi2_exact, f"{label} <|phi|^2>", **point.power("phi2"))
    check_mc(dual.data("n"), n_exact, f"{label} <n>", **point.power("n"))
    if point.mu == 0.0:
        _check_windings_symmetric(dual, label, minimum=200)
    for name in ("phi2", "n"):  # the stored configurations are decorrelated
        assert dual.stats(name).tau_int < 1.0, (label, name)


def _check_windings_symmetric(dual: DualSeries, label: str, minimum: int) -> None:
    """At mu = 0: as many positive as negative windings (and enough of them to mean something)."""
    n = dual.values("n")
    n_pos, n_neg = int((n > 0).sum()), int((n < 0).sum())
    assert n_pos + n_neg >= minimum, f"{label}: only {n_pos + n_neg} winding configurations"
    assert abs(n_pos - n_neg) <= N_SIGMA * (n_pos + n_neg) ** 0.5, (label, n_pos, n_neg)


@pytest.mark.parametrize("shape", [(4, 4, 4), (3, 3, 3, 3)])
def test_directions_are_equivalent_on_a_cube_at_mu0(shape: tuple[int, ...]) -> None:
    """At mu = 0 on a cube every direction is equivalent: <Σ_x |k_nu|> agree within errors for all
    nu (a neighbour table or a direction draw wrong on one axis breaks this; in 3D nu comes from
    its own byte with a rejection, in 4D from two bits). Power: each mean to 2.5 %; a 15 % larger
    flux along one axis fails (negative control)."""
    d = len(shape)
    eta = 2.0 * d + 0.3
    ens = generate_ensemble(PhysicsParams(eta, 0.0, 0.0), Lattice(*shape), 4000, seed=5)
    bounds = np.cumsum(ens.meta["chain_lengths"])[:-1]
    flux = np.abs(ens.configs[:, :d]).sum(axis=tuple(range(2, 2 + d))).astype(float)  # (N, d)
    per_dir = [autocorrelation(np.split(flux[:, nu], bounds)) for nu in range(d)]
    mean = float(np.mean([r.mean for r in per_dir]))
    for nu, r in enumerate(per_dir):
        assert r.err <= 0.025 * mean, (shape, nu, r)
        # the others' mean has a smaller error; both in quadrature, conservative
        assert abs(r.mean - mean) <= N_SIGMA * r.err * np.sqrt(1 + 1 / (d - 1)), (
            shape, nu, [p.mean for p in per_dir],
        )  # fmt: skip
        # negative control: a 15 % larger flux along one axis would fail
        assert abs(1.15 * r.mean - mean) > N_SIGMA * r.err * np.sqrt(1 + 1 / (d - 1))


def test_spec_values_in_4d() -> None:
    """SPEC §3: 4^4, eta = 8.5, mu = 0.6: <|phi|^2> = 0.165131, <n> = 0.040277."""
    n, phi2 = free_field_observables(8.5, 0.6, shape=(4, 4, 4, 4))
    assert (round(phi2, 6), round(n, 6)) == (0.165131, 0.040277)
