"""flux_divergence, site_f and the per-configuration observables against explicit loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from scalar_ml.physics import PhysicsParams, WeightTable
from scalar_ml.physics.observables import charge_density, flux_divergence, measure, site_f


def random_configs(rng: np.random.Generator, n: int, nt: int, nx: int) -> np.ndarray:
    cfg = np.empty((n, 4, nt, nx), dtype=np.int32)
    cfg[:, :2] = rng.integers(-3, 4, size=(n, 2, nt, nx))
    cfg[:, 2:] = rng.integers(0, 3, size=(n, 2, nt, nx))
    return cfg


def loops_div_and_f(cfg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """div k and f of one (4, Nt, Nx) configuration by explicit loops over sites and links."""
    _, nt, nx = cfg.shape
    div = np.zeros((nt, nx), dtype=np.int64)
    f = np.zeros((nt, nx), dtype=np.int64)
    for t in range(nt):
        for x in range(nx):
            # links leaving (t, x): k_t[t, x] to (t+1, x), k_x[t, x] to (t, x+1)
            # links arriving: k_t[t-1, x], k_x[t, x-1]
            out_links = [(0, t, x), (1, t, x)]
            in_links = [(0, (t - 1) % nt, x), (1, t, (x - 1) % nx)]
            for nu, tt, xx in out_links:
                div[t, x] += cfg[nu, tt, xx]
            for nu, tt, xx in in_links:
                div[t, x] -= cfg[nu, tt, xx]
            for nu, tt, xx in out_links + in_links:
                f[t, x] += abs(int(cfg[nu, tt, xx])) + 2 * int(cfg[2 + nu, tt, xx])
    return div, f


def w_quad(f: int, eta: float, lam: float) -> float:
    return integrate.quad(
        lambda r: r ** (f + 1) * math.exp(-eta * r * r - lam * r**4),
        0,
        np.inf,
        epsabs=0,
        epsrel=1e-13,
    )[0]


def test_divergence_and_site_flux_match_loops(rng: np.random.Generator) -> None:
    cfgs = random_configs(rng, 5, 5, 3)
    div = flux_divergence(cfgs)
    f = site_f(cfgs)
    assert div.shape == f.shape == (5, 5, 3)
    for i in range(5):
        d_ref, f_ref = loops_div_and_f(cfgs[i])
        assert np.array_equal(div[i], d_ref)
        assert np.array_equal(f[i], f_ref)
    # extra leading axes are allowed
    assert np.array_equal(flux_divergence(cfgs.reshape(5, 1, 4, 5, 3))[:, 0], div)
    # sum of div over the lattice vanishes for any configuration (every link counted twice)
    assert np.all(div.sum(axis=(-2, -1)) == 0)


def test_closed_loops_have_zero_divergence() -> None:
    cfg = np.zeros((4, 6, 4), dtype=np.int32)
    # an elementary plaquette loop at (t, x) = (2, 1): +t, +x, -t, -x
    cfg[0, 2, 1] += 1
    cfg[1, 3, 1] += 1
    cfg[0, 2, 2] -= 1
    cfg[1, 2, 1] -= 1
    # a spatial winding loop and two temporal windings of opposite charge
    cfg[1, 4, :] += 2
    cfg[0, :, 0] += 1
    cfg[0, :, 3] -= 1
    assert not flux_divergence(cfg).any()
    assert charge_density(cfg) == 0.0
    cfg[0, :, 3] += 2  # now net temporal winding +2
    assert not flux_divergence(cfg).any()
    assert charge_density(cfg) == pytest.approx(2 / 4)  # winding / Nx


def test_measure_matches_independent_recomputation(rng: np.random.Generator) -> None:
    params = PhysicsParams(4.01, 1.0, 0.7)
    cfgs = random_configs(rng, 3, 4, 6)
    obs = measure(cfgs, params)
    cache: dict[int, float] = {}

    def w(f: int) -> float:
        if f not in cache:
            cache[f] = w_quad(f, params.eta, params.lam)
        return cache[f]

    for i in range(3):
        _, f = loops_div_and_f(cfgs[i])
        n_ref = cfgs[i, 0].sum() / cfgs[i, 0].size
        phi2_ref = np.mean([w(v + 2) / w(v) for v in f.ravel().tolist()])
        phi4_ref = np.mean([w(v + 4) / w(v) for v in f.ravel().tolist()])
        assert obs["n"][i] == pytest.approx(n_ref, rel=1e-14, abs=1e-15)
        assert obs["phi2"][i] == pytest.approx(phi2_ref, rel=1e-10)
        assert obs["phi4"][i] == pytest.approx(phi4_ref, rel=1e-10)
    # a ready table gives the same numbers, single configurations work too
    table = WeightTable(params.eta, params.lam)
    again = measure(cfgs, table)
    assert all(np.array_equal(obs[k], again[k]) for k in obs)
    single = measure(cfgs[1], table)
    assert float(single["phi2"]) == obs["phi2"][1]


def test_measure_check_closed_rejects_violations(rng: np.random.Generator) -> None:
    cfg = np.zeros((2, 4, 4, 4), dtype=np.int32)
    measure(cfg, PhysicsParams(4.01, 1.0, 0.0), check_closed=True)
    cfg[1, 1, 0, 0] = 1
    with pytest.raises(ValueError, match="div k"):
        measure(cfg, PhysicsParams(4.01, 1.0, 0.0), check_closed=True)
    cfg[1, 1, 0, 0] = 0
    cfg[0, 2, 1, 1] = -1
    with pytest.raises(ValueError, match="l < 0"):
        measure(cfg, PhysicsParams(4.01, 1.0, 0.0), check_closed=True)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 4, 4)), np.zeros((2, 3, 4, 4), dtype=np.int32), np.zeros((4, 4), dtype=np.int32)],
)
def test_bad_shapes_and_dtypes(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="configurations"):
        flux_divergence(bad)
    with pytest.raises(ValueError, match="configurations"):
        measure(bad, PhysicsParams(4.01, 1.0, 0.0))
