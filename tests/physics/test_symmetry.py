"""Reflections, the t↔x swap and charge conjugation (scalar_ml.physics.symmetry), checked exactly.

* the link transformation against an independent derivation from the site matrix (single links);
* the group: composition of the actions equals the action of the composition, the composition
  table, inverses, which elements are symmetries at which (mu, lattice);
* exact invariances on random valid configurations (random loops, worm-sampled): the dual weight
  (at the image mu), div k, f, closedness, the observables (n flips with T or C alone);
* the sampled distribution: every element of the symmetry group leaves the mean of a battery of
  non-invariant observables unchanged (autocorrelation-aware errors, asserted resolution), and the
  same test rejects elements that are not symmetries (T, C at mu != 0; the swap at small mu != 0).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from physics_tolerances import N_SIGMA

from scalar_ml.physics import (
    FIXED_MU_GROUP,
    Lattice,
    PhysicsParams,
    WormChains,
    element,
    flux_divergence,
    generate_ensemble,
    generate_group,
    log_dual_weight,
    measure,
    site_f,
    symmetry_group,
)
from scalar_ml.physics.autocorr import autocorrelation
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.symmetry import ALL_ELEMENTS, LatticeSymmetry

NON_SQUARE = [(5, 3), (6, 4), (3, 7)]  # odd and even extents
SQUARE = [(4, 4), (5, 5)]
LATTICES = NON_SQUARE + SQUARE


# -- helpers ------------------------------------------------------------------------------------------
def random_closed_configs(rng: np.random.Generator, n: int, nt: int, nx: int) -> np.ndarray:
    """Closed configurations: random plaquette loops, random windings in t and x, random l.

    Sums of plaquette boundaries and windings give every divergence-free k on the torus.
    """
    cfg = np.zeros((n, 4, nt, nx), dtype=np.int32)
    for i in range(n):
        n_plaq = int(rng.integers(0, 3 * nt * nx))
        t, x = rng.integers(0, nt, n_plaq), rng.integers(0, nx, n_plaq)
        s = rng.choice([-1, 1], n_plaq)
        np.add.at(cfg[i, 0], (t, x), s)
        np.add.at(cfg[i, 1], ((t + 1) % nt, x), s)
        np.add.at(cfg[i, 0], (t, (x + 1) % nx), -s)
        np.add.at(cfg[i, 1], (t, x), -s)
        for _ in range(int(rng.integers(0, 3))):  # temporal windings (charge)
            cfg[i, 0, :, rng.integers(nx)] += rng.choice([-1, 1])
        for _ in range(int(rng.integers(0, 2))):  # spatial windings
            cfg[i, 1, rng.integers(nt), :] += rng.choice([-1, 1])
    cfg[:, 2:] = rng.poisson(0.7, size=(n, 2, nt, nx))
    assert not np.any(flux_divergence(cfg))
    return cfg


def worm_configs(params: PhysicsParams, nt: int, nx: int, seed: int) -> np.ndarray:
    """A few worm-sampled closed configurations (tiny chains, correlated; only validity matters)."""
    chains = WormChains(params, Lattice(nt, nx), seed=seed, n_chains=2)
    chains.run(30, series=False)
    out = chains.run(40, record_every=10, series=False)
    return out.configs.reshape(-1, 4, nt, nx)


def link_image_by_matrix(
    g: LatticeSymmetry, channel: int, t: int, x: int, nt: int, nx: int
) -> tuple[int, int, int, int]:
    """Where a unit on one link goes, from the site matrix alone (module docstring derivation).

    Returns ``(channel', t', x', value)``: the link (t, x) -> (t, x) + nu_hat maps to the link from
    A(t, x) to A(t, x) + A nu_hat = A(t, x) + s mu_hat; for s = -1 it is the forward mu-link based one
    site back, traversed backwards (k changes sign, l does not).
    """
    a = np.array(g.matrix)
    nu = channel % 2
    is_k = channel < 2
    image_site = a @ np.array([t, x])
    step = a @ np.eye(2, dtype=int)[nu]
    mu = int(np.flatnonzero(step)[0])
    s = int(step[mu])
    base = image_site + (np.eye(2, dtype=int)[mu] if s < 0 else 0) * -1
    shape = (nx, nt) if g.swap else (nt, nx)
    value = (g.charge_sign * s) if is_k else 1
    return (mu if is_k else 2 + mu, int(base[0] % shape[0]), int(base[1] % shape[1]), value)


# -- the action, derived independently -------------------------------------------------------------
@pytest.mark.parametrize(("nt", "nx"), [(5, 3), (4, 4)])
def test_every_link_moves_as_derived_from_the_site_matrix(nt: int, nx: int) -> None:
    for g in ALL_ELEMENTS:
        for channel, t, x in itertools.product(range(4), range(nt), range(nx)):
            cfg = np.zeros((4, nt, nx), dtype=np.int32)
            cfg[channel, t, x] = 1
            image = g.apply(cfg)
            c2, t2, x2, value = link_image_by_matrix(g, channel, t, x, nt, nx)
            expected = np.zeros((4, *((nx, nt) if g.swap else (nt, nx))), dtype=np.int32)
            expected[c2, t2, x2] = value
            assert np.array_equal(image, expected), (g.name, channel, t, x)


@pytest.mark.parametrize(("nt", "nx"), [(5, 3), (4, 4)])
def test_sites_move_by_the_matrix(nt: int, nx: int) -> None:
    for g in ALL_ELEMENTS:
        a = np.array(g.matrix)
        shape = (nx, nt) if g.swap else (nt, nx)
        for t, x in itertools.product(range(nt), range(nx)):
            field = np.zeros((nt, nx), dtype=np.int64)
            field[t, x] = 7
            y = a @ np.array([t, x])
            expected = np.zeros(shape, dtype=np.int64)
            expected[y[0] % shape[0], y[1] % shape[1]] = 7
            assert np.array_equal(g.apply_sites(field), expected), (g.name, t, x)


def test_generators_act_as_in_the_table_of_the_docstring(rng: np.random.Generator) -> None:
    cfg = rng.integers(-3, 4, size=(2, 4, 5, 3)).astype(np.int64)
    site = lambda a, ax: np.take(a, (-np.arange(a.shape[ax])) % a.shape[ax], axis=ax)  # noqa: E731
    link = lambda a, ax: np.take(a, (-np.arange(a.shape[ax]) - 1) % a.shape[ax], axis=ax)  # noqa: E731
    kt, kx, lt, lx = (cfg[:, i] for i in range(4))
    expected = {
        "T": [-link(kt, -2), site(kx, -2), link(lt, -2), site(lx, -2)],
        "P": [site(kt, -1), -link(kx, -1), site(lt, -1), link(lx, -1)],
        "S": [kx.swapaxes(-2, -1), kt.swapaxes(-2, -1), lx.swapaxes(-2, -1), lt.swapaxes(-2, -1)],
        "C": [-kt, -kx, lt, lx],
    }
    for name, channels in expected.items():
        assert np.array_equal(element(name).apply(cfg), np.stack(channels, axis=1)), name


def test_numpy_and_torch_give_the_same_images(rng: np.random.Generator) -> None:
    cfg = rng.integers(-3, 4, size=(3, 4, 5, 4)).astype(np.int64)
    for g in ALL_ELEMENTS:
        image = g.apply(torch.from_numpy(cfg))
        assert isinstance(image, torch.Tensor)
        assert np.array_equal(image.numpy(), g.apply(cfg)), g.name
        assert np.array_equal(
            g.apply_sites(torch.from_numpy(cfg[:, 0])).numpy(), g.apply_sites(cfg[:, 0])
        )


def test_apply_returns_new_arrays_and_refuses_bad_input() -> None:
    cfg = np.ones((4, 3, 3), dtype=np.int32)
    for g in ALL_ELEMENTS:
        image = g.apply(cfg)
        image[...] = 5
        sites = g.apply_sites(cfg[0])
        sites[...] = 5
    assert np.all(cfg == 1)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4, Nt, Nx\).*got shape \(3, 3, 3\)"):
        element("P").apply(np.zeros((3, 3, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="signed dtype"):
        element("P").apply(np.zeros((4, 3, 3), dtype=np.uint8))


# -- the group ---------------------------------------------------------------------------------------
def test_all_sixteen_elements_are_distinct_signed_permutations() -> None:
    assert len(ALL_ELEMENTS) == 16 == len({g.name for g in ALL_ELEMENTS})
    assert ALL_ELEMENTS[0].name == "1"
    matrices = {(g.matrix, g.conjugate) for g in ALL_ELEMENTS}
    assert len(matrices) == 16
    for g in ALL_ELEMENTS:
        a = np.array(g.matrix)
        assert (
            sorted(np.abs(a).ravel().tolist()) == [0, 0, 1, 1] and round(abs(np.linalg.det(a))) == 1
        )
        assert element(g.name) is g


@pytest.mark.parametrize(("nt", "nx"), [(5, 3), (4, 4)])
def test_composition_is_matrix_product_and_composed_action(
    rng: np.random.Generator, nt: int, nx: int
) -> None:
    cfg = rng.integers(-3, 4, size=(2, 4, nt, nx)).astype(np.int32)
    for g, h in itertools.product(ALL_ELEMENTS, repeat=2):
        gh = g * h
        assert np.array_equal(np.array(gh.matrix), np.array(g.matrix) @ np.array(h.matrix))
        assert gh.charge_sign == g.charge_sign * h.charge_sign
        assert np.array_equal(gh.apply(cfg), g.apply(h.apply(cfg))), (g.name, h.name)
        assert np.array_equal(gh.apply_sites(cfg[:, 0]), g.apply_sites(h.apply_sites(cfg[:, 0])))
    for g in ALL_ELEMENTS:
        assert g * g.inverse() == ALL_ELEMENTS[0] == g.inverse() * g
        assert np.array_equal(g.inverse().apply(g.apply(cfg)), cfg)


def test_composition_tables() -> None:
    v4 = FIXED_MU_GROUP
    assert v4.names == ("1", "P", "TC", "TPC")
    names = [[v4.names[j] for j in row] for row in v4.table()]
    assert names == [
        ["1", "P", "TC", "TPC"],
        ["P", "1", "TPC", "TC"],
        ["TC", "TPC", "1", "P"],
        ["TPC", "TC", "P", "1"],
    ]
    full = generate_group(["S", "T", "P", "C"])
    table = full.table()
    assert len(full) == 16
    for row in (*table, *table.T):  # a Latin square: every product exactly once
        assert sorted(row.tolist()) == list(range(16))
    assert np.array_equal(table[0], np.arange(16)) and np.array_equal(table[:, 0], np.arange(16))
    # D4 x C2 is not abelian: the swap and the reflections do not commute, S T = P S
    s, t, p = element("S"), element("T"), element("P")
    assert s * t != t * s and s * t == p * s
    # the rotations by 90 degrees have order 4, the reflections order 2
    r = element("ST")
    assert (r * r).name == "TP" and (r * r * r * r).name == "1"
    for name in ("T", "P", "S", "STP", "C", "TC"):
        assert (element(name) * element(name)).name == "1"


def test_symmetry_group_is_exactly_the_elements_that_are_symmetries() -> None:
    for mu, (nt, nx) in itertools.product([0.0, 0.3, -1.2], LATTICES):
        lattice = Lattice(nt, nx)
        group = symmetry_group(mu, lattice)
        expected = [g for g in ALL_ELEMENTS if g.is_symmetry(mu, lattice)]
        assert list(group.elements) == expected, (mu, nt, nx)
        assert group.is_symmetry(mu, lattice)
        size = 4 if mu != 0 else (16 if nt == nx else 8)
        assert len(group) == size
    assert symmetry_group(1.0, Lattice(8, 8)) == FIXED_MU_GROUP
    assert generate_group([]).names == ("1",)


def test_mu_and_lattice_images() -> None:
    assert [element(n).mu_image(0.7) for n in ("1", "P", "T", "C", "TC", "TPC", "PC")] == [
        0.7,
        0.7,
        -0.7,
        -0.7,
        0.7,
        0.7,
        -0.7,
    ]
    assert element("S").mu_image(0.0) == 0.0
    with pytest.raises(ValueError, match="only mu = 0 has an image"):
        element("STC").mu_image(0.1)
    assert element("SP").lattice_image(Lattice(6, 4)) == Lattice(4, 6)
    assert element("TP").lattice_image(Lattice(6, 4)) == Lattice(6, 4)
    assert element("C").params_image(PhysicsParams(4.01, 1.0, 0.9)) == PhysicsParams(
        4.01, 1.0, -0.9
    )


def test_unknown_names_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown lattice symmetry 'CT'.*1, C, P, PC, T, TC"):
        element("CT")
    with pytest.raises(ValueError, match="unknown lattice symmetry 'R'"):
        generate_group(["P", "R"])


# -- exact invariances on valid configurations ------------------------------------------------------
def valid_configs(rng: np.random.Generator, nt: int, nx: int) -> np.ndarray:
    sampled = worm_configs(PhysicsParams(4.01, 1.0, 1.2), nt, nx, seed=nt * 10 + nx)
    return np.concatenate([random_closed_configs(rng, 12, nt, nx), sampled])


@pytest.mark.parametrize(("nt", "nx"), LATTICES)
def test_dual_weight_div_and_f_are_invariant(rng: np.random.Generator, nt: int, nx: int) -> None:
    cfg = valid_configs(rng, nt, nx)
    assert np.any(cfg[:, 0].sum(axis=(-2, -1)) != 0), "need charged configurations"
    for g in ALL_ELEMENTS:
        image = g.apply(cfg)
        assert image.shape == (cfg.shape[0], 4, *g.lattice_image(Lattice(nt, nx)).shape)
        assert not np.any(flux_divergence(image)), g.name  # closed stays closed
        assert np.array_equal(site_f(image), g.apply_sites(site_f(cfg))), g.name
        for mu in [0.0] if g.swap else [0.0, 0.83, -0.4]:
            params = PhysicsParams(4.01, 1.0, mu)
            before = log_dual_weight(cfg, params)
            after = log_dual_weight(image, g.params_image(params))
            assert np.all(np.isfinite(before))
            np.testing.assert_allclose(after, before, rtol=1e-13, atol=0, err_msg=g.name)
            if g.is_symmetry(mu, Lattice(nt, nx)):
                np.testing.assert_allclose(log_dual_weight(image, params), before, rtol=1e-13)


def test_weight_at_mu_changes_under_t_or_c_alone(rng: np.random.Generator) -> None:
    """Negative control: T and C are no symmetries at mu != 0 (the weight changes by e^{-2 mu Σk_t})."""
    cfg = valid_configs(rng, 6, 4)
    params = PhysicsParams(4.01, 1.0, 0.83)
    winding = cfg[:, 0].sum(axis=(-2, -1))
    for name in ("T", "C", "TP", "PC"):
        diff = log_dual_weight(element(name).apply(cfg), params) - log_dual_weight(cfg, params)
        np.testing.assert_allclose(diff, -2 * 0.83 * winding, rtol=1e-12, atol=1e-12)
        assert np.abs(diff).max() > 1.0


@pytest.mark.parametrize(("nt", "nx"), LATTICES)
def test_open_configurations_keep_their_violations(
    rng: np.random.Generator, nt: int, nx: int
) -> None:
    cfg = rng.integers(-2, 3, size=(6, 4, nt, nx)).astype(np.int32)
    cfg[:, 2:] = np.abs(cfg[:, 2:])
    div = flux_divergence(cfg)
    assert np.any(div)
    for g in ALL_ELEMENTS:
        image = g.apply(cfg)
        assert np.array_equal(flux_divergence(image), g.charge_sign * g.apply_sites(div)), g.name
        assert np.array_equal(
            np.abs(flux_divergence(image)).sum(axis=(-2, -1)), np.abs(div).sum(axis=(-2, -1))
        )
        assert np.all(log_dual_weight(image, PhysicsParams(4.01, 1.0, 0.0)) == -np.inf)


@pytest.mark.parametrize(("nt", "nx"), LATTICES)
def test_observables_transform_as_derived(rng: np.random.Generator, nt: int, nx: int) -> None:
    cfg = valid_configs(rng, nt, nx)
    params = PhysicsParams(4.01, 1.0, 1.0)
    obs = measure(cfg, params)
    for g in ALL_ELEMENTS:
        image_obs = measure(g.apply(cfg), params)
        for name in ("phi2", "phi4"):
            np.testing.assert_allclose(image_obs[name], obs[name], rtol=1e-14, err_msg=g.name)
        if g.swap:  # the temporal winding becomes the spatial one
            expected_n = g.charge_sign * cfg[:, 1].sum(axis=(-2, -1)) / (nt * nx)
            if g.x_reflect:  # S P: the x-links reflected before the swap reverse
                expected_n = -expected_n
        else:
            expected_n = g.mu_image(1.0) * obs["n"]
        np.testing.assert_array_equal(image_obs["n"], expected_n, err_msg=g.name)
        if g in FIXED_MU_GROUP:
            np.testing.assert_array_equal(image_obs["n"], obs["n"])


def test_log_dual_weight_against_loops_and_quadrature(rng: np.random.Generator) -> None:
    """log w by explicit loops over links and sites, factorials and W(f) from their definitions."""
    import math

    from scipy import integrate

    def w_quad(f: int, eta: float, lam: float) -> float:
        return integrate.quad(
            lambda r: r ** (f + 1) * math.exp(-eta * r * r - lam * r**4),
            0,
            np.inf,
            epsabs=0,
            epsrel=1e-13,
        )[0]

    params = PhysicsParams(4.25, 0.7, 0.6)
    nt, nx = 3, 4
    cfg = valid_configs(rng, nt, nx)[:6]
    got = log_dual_weight(cfg, params)
    for i in range(cfg.shape[0]):
        c = cfg[i].astype(int)
        total = 0.0
        f = np.zeros((nt, nx), dtype=int)
        for t, x, nu in itertools.product(range(nt), range(nx), range(2)):
            k, l = c[nu, t, x], c[2 + nu, t, x]
            total += params.mu * k * (nu == 0)
            total -= math.log(math.factorial(abs(k) + l) * math.factorial(l))
            t2, x2 = ((t + 1) % nt, x) if nu == 0 else (t, (x + 1) % nx)
            f[t, x] += abs(k) + 2 * l
            f[t2, x2] += abs(k) + 2 * l
        total += sum(math.log(w_quad(int(v), params.eta, params.lam)) for v in f.ravel())
        assert got[i] == pytest.approx(total, rel=1e-11, abs=1e-11)
    assert isinstance(log_dual_weight(cfg[0], params), float)
    with pytest.raises(ValueError, match="l must be >= 0"):
        bad = cfg.copy()
        bad[0, 2, 0, 0] = -1
        log_dual_weight(bad, params)


# -- the sampled distribution -----------------------------------------------------------------------
def battery(cfg: np.ndarray) -> dict[str, np.ndarray]:
    """Observables that are not invariant under the point group (float64 per configuration).

    Between them every element other than 1 changes at least one (asserted below): windings (odd
    under the reflection of their axis' links and under C), a flux 'corner' sum_x k_t k_x, an l-k
    cross term and |k_t| (exchanged with |k_x| by the swap).
    """
    c = cfg.astype(np.int64)
    kt, kx, lt = c[:, 0], c[:, 1], c[:, 2]
    axes = (-2, -1)
    return {
        "sum k_t": kt.sum(axes).astype(float),
        "sum k_x": kx.sum(axes).astype(float),
        "sum k_t k_x": (kt * kx).sum(axes).astype(float),
        "sum l_t |k_x|": (lt * np.abs(kx)).sum(axes).astype(float),
        "sum |k_t|": np.abs(kt).sum(axes).astype(float),
    }


def asymmetry(ens: Ensemble, g: LatticeSymmetry) -> dict[str, tuple[float, float, float]]:
    """Per battery observable Q: (mean of Q - Q∘g, its Γ-method error, std of Q) over the chains."""
    before, after = battery(ens.configs), battery(g.apply(ens.configs))
    cuts = np.cumsum(ens.meta["chain_lengths"])[:-1]
    out = {}
    for name in before:
        diff = before[name] - after[name]
        if not np.any(diff):
            continue  # invariant configuration by configuration: no information
        res = autocorrelation([p for p in np.split(diff, cuts) if p.size >= 2])
        out[name] = (res.mean, res.err, float(before[name].std()))
    return out


@pytest.fixture(scope="module")
def ensembles() -> dict[str, Ensemble]:
    """Three small ensembles (eta = 4.01, lam = 1): about 1 s each on one core."""
    kwargs = {"n_chains": 4}
    return {
        "mu=1, 6x4": generate_ensemble(
            PhysicsParams(4.01, 1.0, 1.0), Lattice(6, 4), 2000, 11, **kwargs
        ),
        "mu=0, 6x6": generate_ensemble(
            PhysicsParams(4.01, 1.0, 0.0), Lattice(6, 6), 2000, 12, **kwargs
        ),
        "mu=0.5, 6x6": generate_ensemble(
            PhysicsParams(4.01, 1.0, 0.5), Lattice(6, 6), 2000, 13, **kwargs
        ),
    }


#: The test resolves a difference of mean(Q) - mean(Q∘g) of N_SIGMA errors; asserted to be at most
#: this fraction of the standard deviation of Q (the test's power).
RESOLUTION = 0.25


@pytest.mark.parametrize("key", ["mu=1, 6x4", "mu=0, 6x6"])
def test_sampled_distribution_is_symmetric_under_its_group(
    ensembles: dict[str, Ensemble], key: str
) -> None:
    ens = ensembles[key]
    mu = ens.meta["params"]["mu"]
    lattice = Lattice(**ens.meta["lattice"])
    group = symmetry_group(mu, lattice)
    assert len(group) == (4 if mu else 16)
    for g in group.elements[1:]:
        stats = asymmetry(ens, g)
        assert stats, f"{g.name}: no battery observable changes under it (vacuous test)"
        for name, (mean, err, std) in stats.items():
            assert err > 0
            assert N_SIGMA * err <= RESOLUTION * std, f"{g.name}, {name}: too little power"
            assert abs(mean) <= N_SIGMA * err, f"{g.name}, {name}: {mean:.4g} ± {err:.2g}"


def test_same_test_rejects_elements_that_are_no_symmetries(
    ensembles: dict[str, Ensemble],
) -> None:
    """Negative controls: T, C (mu -> -mu) at mu = 1; the swap on a square lattice at mu = 0.5."""

    def worst(ens: Ensemble, g: LatticeSymmetry) -> float:
        return max(abs(mean) / err for mean, err, _ in asymmetry(ens, g).values())

    ens = ensembles["mu=1, 6x4"]
    for g in ALL_ELEMENTS:
        if g.swap or g.is_symmetry(1.0, Lattice(6, 4)):
            continue
        assert worst(ens, g) > 5 * N_SIGMA, g.name  # n flips: a huge effect
    ens = ensembles["mu=0.5, 6x6"]
    assert abs(ens.n.mean()) < 0.05  # a small charge density, yet the swap is seen clearly
    for g in ALL_ELEMENTS[1:]:
        if g.swap:
            assert worst(ens, g) > 2 * N_SIGMA, g.name
        elif g.is_symmetry(0.5, Lattice(6, 6)):
            assert worst(ens, g) <= N_SIGMA, g.name


@pytest.mark.slow
@pytest.mark.ci  # physics: .ci/run runs it (about 10 s)
@pytest.mark.parametrize(
    ("eta", "mu", "nt", "nx"),
    [(4.01, 1.0, 60, 4), (4.25, 1.0, 8, 8), (4.01, 1.5, 8, 8)],
    ids=["task1-60x4", "task23-a-8x8", "task23-b-8x8"],
)
def test_training_points_are_symmetric_under_p_and_tc(
    eta: float, mu: float, nt: int, nx: int
) -> None:
    """The tasks' own physics points: <P, TC> holds, T and C (mu -> -mu) are rejected."""
    ens = generate_ensemble(PhysicsParams(eta, 1.0, mu), Lattice(nt, nx), 8000, 21, n_chains=8)
    for g in ALL_ELEMENTS[1:]:
        if g.swap:
            continue
        stats = asymmetry(ens, g)
        assert stats, g.name
        z = max(abs(mean) / err for mean, err, _ in stats.values())
        if g.is_symmetry(mu, Lattice(nt, nx)):
            for name, (_, err, std) in stats.items():
                assert N_SIGMA * err <= RESOLUTION * std, f"{g.name}, {name}: too little power"
            assert z <= N_SIGMA, g.name
        else:
            assert z > 5 * N_SIGMA, g.name
