"""generate_ensemble: closed configurations, observables, metadata, reproducibility, bad input."""

from __future__ import annotations

import json
import math

import numba
import numpy as np
import pytest
from scipy import integrate

import scalar_ml
from scalar_ml.physics import Lattice, PhysicsParams, generate_ensemble
from scalar_ml.physics import ensemble as ensemble_mod

PARAMS = PhysicsParams(4.01, 1.0, 1.0)


@pytest.fixture(scope="module")
def small_ensemble() -> ensemble_mod.Ensemble:
    return generate_ensemble(PARAMS, Lattice(6, 4), 45, seed=5, n_chains=4)


def test_configurations_are_closed_and_observables_recomputed(small_ensemble) -> None:
    ens = small_ensemble
    cfg = ens.configs
    assert cfg.shape == (45, 4, 6, 4) and cfg.dtype == np.int32
    assert ens.n.shape == ens.phi2.shape == ens.phi4.shape == (45,)
    assert (cfg[:, 2:] >= 0).all()
    k_t, k_x = cfg[:, 0].astype(int), cfg[:, 1].astype(int)
    # independent recomputation with explicit loops and scipy quadrature for W(f)
    w_cache: dict[int, float] = {}

    def w(f: int) -> float:
        if f not in w_cache:
            w_cache[f] = integrate.quad(
                lambda r: r ** (f + 1) * math.exp(-PARAMS.eta * r * r - PARAMS.lam * r**4),
                0,
                np.inf,
                epsabs=0,
                epsrel=1e-13,
            )[0]
        return w_cache[f]

    nt, nx = 6, 4
    for i in range(len(ens)):
        phi2 = phi4 = 0.0
        for t in range(nt):
            for x in range(nx):
                div = k_t[i, t, x] - k_t[i, t - 1, x] + k_x[i, t, x] - k_x[i, t, x - 1]
                assert div == 0, f"config {i}: div k = {div} at ({t}, {x})"
                links = [(0, t, x), (1, t, x), (0, (t - 1) % nt, x), (1, t, (x - 1) % nx)]
                f = sum(
                    abs(int(cfg[i, nu, a, b])) + 2 * int(cfg[i, 2 + nu, a, b]) for nu, a, b in links
                )
                phi2 += w(f + 2) / w(f)
                phi4 += w(f + 4) / w(f)
        assert ens.n[i] == pytest.approx(k_t[i].sum() / (nt * nx), abs=1e-15)
        assert ens.phi2[i] == pytest.approx(phi2 / (nt * nx), rel=1e-10)
        assert ens.phi4[i] == pytest.approx(phi4 / (nt * nx), rel=1e-10)


def test_metadata(small_ensemble) -> None:
    meta = small_ensemble.meta
    json.dumps(meta, allow_nan=False)  # JSON-serialisable, no NaN
    assert meta["params"] == PARAMS.as_dict()
    assert meta["lattice"] == {"nt": 6, "nx": 4}
    assert meta["seed"] == 5 and meta["n_chains"] == 4 and meta["n_configs"] == 45
    assert meta["chain_lengths"] == [12, 11, 11, 11]
    tau = meta["tau_int"]
    assert tau["unit"] == "sweeps" and tau["n"] >= 0.5 and tau["phi2"] >= 0.5
    assert meta["sweeps_between"] >= 2 * max(tau["n"], tau["phi2"])
    assert meta["sweeps_between_auto"] and meta["n_therm_auto"]
    assert meta["n_therm"] >= 20 * max(tau["n"], tau["phi2"])
    assert set(meta["acceptance"]) == {"worm_start", "worm_step", "worm_stop", "l_update"}
    assert all(0 < v <= 1 for v in meta["acceptance"].values())
    for key in (
        "worm_proposals",
        "proposals_per_s",
        "configs_per_s",
        "sweeps_per_s",
        "worms_per_sweep",
    ):
        assert meta[key] > 0, key
    assert set(meta["timings"]) >= {"therm_s", "pilot_s", "production_s", "total_s"}
    assert meta["tau_int_stored"]["unit"] == "configs"
    assert meta["version"] == scalar_ml.__version__


def test_explicit_options_are_honoured_with_warnings() -> None:
    with pytest.warns(UserWarning) as record:
        ens = generate_ensemble(
            PARAMS, Lattice(6, 4), 10, seed=1, n_chains=2, n_therm=30, sweeps_between=1
        )
    messages = " | ".join(str(w.message) for w in record)
    assert "sweeps_between = 1 is shorter than 2 tau_int" in messages
    assert "n_therm = 30 is shorter than 20 tau_int" in messages
    assert ens.meta["sweeps_between"] == 1 and not ens.meta["sweeps_between_auto"]
    assert ens.meta["n_therm"] == 30 and not ens.meta["n_therm_auto"]
    assert ens.meta["chain_lengths"] == [5, 5]


def _ensemble_with_threads(threads: int, seed: int) -> ensemble_mod.Ensemble:
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return generate_ensemble(PARAMS, Lattice(4, 6), 30, seed=seed, n_chains=3)
    finally:
        numba.set_num_threads(previous)


def test_same_seed_same_arrays_for_one_and_two_threads() -> None:
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numba to be allowed two threads")
    one = _ensemble_with_threads(1, seed=123)
    two = _ensemble_with_threads(2, seed=123)
    assert one.meta["num_threads"] == 1 and two.meta["num_threads"] == 2
    assert np.array_equal(one.configs, two.configs)
    for name in ("n", "phi2", "phi4"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    for key in ("n_therm", "sweeps_between", "worms_per_sweep", "tau_int", "worm_proposals"):
        assert one.meta[key] == two.meta[key], key
    other = _ensemble_with_threads(2, seed=124)
    assert not np.array_equal(one.configs, other.configs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"params": PhysicsParams(0.0, 1.0, 0.0)}, "eta"),
        ({"params": PhysicsParams(4.01, -1.0, 0.0)}, "lam"),
        ({"params": PhysicsParams(4.01, 0.0, 0.5)}, "free theory"),
        ({"params": (4.01, 1.0, 1.0)}, "PhysicsParams"),
        ({"lattice": Lattice(1, 8)}, "nt"),
        ({"lattice": Lattice(8, 1)}, "nx"),
        ({"n_configs": 0}, "n_configs"),
        ({"n_configs": 10.0}, "n_configs"),
        ({"n_configs": True}, "n_configs"),
        ({"seed": -3}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"n_chains": 0}, "n_chains"),
        ({"n_therm": -1}, "n_therm"),
        ({"sweeps_between": 0}, "sweeps_between"),
        ({"progress": "yes"}, "progress"),
        ({"n_configs": 10**9, "lattice": Lattice(64, 64)}, "GiB"),
    ],
)
def test_bad_input_fails_before_any_work(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict, match: str
) -> None:
    def no_work(*args, **kw):
        raise AssertionError("sampling started before the arguments were validated")

    monkeypatch.setattr(ensemble_mod, "WormChains", no_work)
    monkeypatch.setattr(ensemble_mod, "WeightTable", no_work)
    args = {"params": PARAMS, "lattice": Lattice(4, 4), "n_configs": 10, "seed": 1, **kwargs}
    params, lattice, n_configs, seed = (
        args.pop(k) for k in ("params", "lattice", "n_configs", "seed")
    )
    with pytest.raises(ValueError, match=match):
        generate_ensemble(params, lattice, n_configs, seed, **args)
