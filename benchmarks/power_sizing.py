r"""Statistics the physics tests need for their stated power, from measured variances and τ_int.

Every statistical physics check (``tests/physics/physics_tolerances.py``) asserts that its combined
error is at most ``max_rel_sigma · |reference|`` (0.125 % by default: a 1 % bias at 8 σ). This
script runs a short pilot at every point of the tests' tables and prints, per observable:

* ``a = σ·√N`` of the dual estimate (``σ`` Γ-method error over the chains of ``N`` stored
  configurations, so ``a² = 2τ_int·Var`` of the stored series) and, for φ-reference points,
  ``b = σ·√M`` of the reweighted reference (``M`` measurements in all chains);
* the CPU cost per stored configuration (sweeps between stored configurations × CPU per sweep) and
  per reference measurement, and the fixed thermalisation cost;
* the σ the tables' current sizes give, as a fraction of the stated bound (must stay below 1; the
  tables aim at <= 0.85 so that a new seed or sampler never trips the power assertion);
* the cheapest sizes reaching 0.85 of the bound: for a dual-vs-reference check
  ``a²/N + b²/M <= (0.85·bound)²`` minimising ``c_d N + c_r M`` (over both observables at once).

CPU figures are measured on one numba thread (``process_time`` of two spinning threads on a loaded
machine is meaningless); the tests run both cores, so their wall time on an idle 2-core machine is
about half of the CPU figure for the dual sampler (the φ reference is single-threaded).

    python benchmarks/power_sizing.py                    # all tables (about 2 minutes of CPU)
    python benchmarks/power_sizing.py --table interacting --pilot-configs 8000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "physics")]

from mc_helpers import REF_CHAINS  # noqa: E402
from physics_tolerances import McPoint, chain_stats, table_points  # noqa: E402

from scalar_ml.physics import (  # noqa: E402
    Lattice,
    PhysicsParams,
    free_field_observables,
    generate_ensemble,
    sample_phi_reference,
)

MARGIN = 0.85


def _tables() -> dict[str, list[tuple[McPoint, dict[str, tuple[float, float]] | None]]]:
    """name -> [(point, {obs: (reference value, its error)} or None: exact / φ reference)]."""
    import test_interacting_slow as slow
    import test_phi_reference as ref
    import test_phi_reference_nd as ref_nd
    import test_sampler_exact as exact
    import test_sampler_exact_nd as exact_nd

    return {
        "free": [(p, None) for p in table_points(exact.FREE_POINTS)],
        "reference-free": [(p, None) for p in table_points(ref.FREE_POINTS)],
        "interacting": [(p, None) for p in table_points(ref.INTERACTING_POINTS)],
        "free-nd": [(p, None) for p in table_points(exact_nd.FREE_POINTS_ND)],
        "interacting-nd": [(p, None) for p in table_points(ref_nd.INTERACTING_POINTS_ND)],
        "spec": [
            (p, {"n": (n, slow.SPEC_REF_ERR["n"]), "phi2": (phi2, slow.SPEC_REF_ERR["phi2"])})
            for p, n, phi2 in slow.SPEC_POINTS
        ],
    }


def _bound(point: McPoint, name: str, value: float) -> float:
    power = point.power(name)
    if power.get("max_sigma") is not None:
        return float(power["max_sigma"])
    return float(power["max_rel_sigma"]) * abs(value)


def _dual_pilot(point: McPoint, n_configs: int) -> dict:
    params, lattice = PhysicsParams(point.eta, point.lam, point.mu), point.lattice
    t0 = time.process_time()
    ens = generate_ensemble(params, lattice, n_configs, seed=1000, n_chains=point.n_chains)
    cpu = time.process_time() - t0
    meta = ens.meta
    per_sweep = cpu / (meta["sweeps_per_chain"] * meta["n_chains"])
    per_config = per_sweep * meta["sweeps_between"]
    stats = {name: chain_stats(ens, name) for name in ("phi2", "n")}
    return {
        "a": {k: s.err * math.sqrt(n_configs) for k, s in stats.items()},
        "mean": {k: s.mean for k, s in stats.items()},
        "cost": per_config,
        "fixed": max(cpu - per_config * n_configs, 0.0),
        "sweeps_between": meta["sweeps_between"],
    }


def _ref_pilot(point: McPoint, n_meas: int) -> dict:
    params, lattice = PhysicsParams(point.eta, point.lam, point.mu), point.lattice
    t0 = time.process_time()
    run = sample_phi_reference(params, lattice, n_meas, seed=1000, n_chains=REF_CHAINS)
    cpu = time.process_time() - t0
    total = n_meas * REF_CHAINS
    stats = {name: run.observable(name) for name in ("phi2", "n")}
    return {
        "b": {k: s.err * math.sqrt(total) for k, s in stats.items()},
        "mean": {k: s.mean for k, s in stats.items()},
        "cost": cpu / total,
        "phase": run.average_phase().mean,
    }


def _round_up(x: float) -> int:
    """Up to two significant digits."""
    if x <= 100:
        return max(2, math.ceil(x))
    scale = 10 ** (int(math.log10(x)) - 1)
    return int(math.ceil(x / scale) * scale)


def _optimal(a: dict, b: dict, target: dict, c_d: float, c_r: float) -> tuple[float, float]:
    """Cheapest (N, M) with a²/N + b²/M <= target² for every observable (log grid over N)."""
    n_min = max((a[k] / target[k]) ** 2 for k in a)
    best = (math.inf, math.inf, math.inf)
    for n in np.geomspace(n_min * 1.0001, n_min * 1000, 400):
        m = 0.0
        for k in a:
            rest = target[k] ** 2 - a[k] ** 2 / n
            if b[k] > 0:
                m = max(m, b[k] ** 2 / rest)
        cost = c_d * n + c_r * m
        if cost < best[0]:
            best = (cost, n, m)
    return best[1], best[2]


def size(table: str, point: McPoint, spec_values, pilot_configs: int, pilot_ref: int) -> None:
    dual = _dual_pilot(point, pilot_configs) if point.n_configs > 0 else None
    ref = _ref_pilot(point, pilot_ref) if point.n_ref > 0 else None
    if point.lam == 0.0:
        n_exact, phi2_exact = free_field_observables(point.eta, point.mu, shape=point.lattice.shape)
        values = {"phi2": (phi2_exact, 0.0), "n": (n_exact, 0.0)}
    elif spec_values is not None:
        values = spec_values
    else:
        values = {k: (ref["mean"][k], 0.0) for k in ("phi2", "n")}
    head = f"[{table}] {point.id}"
    if dual:
        head += (
            f": dual {dual['cost'] * 1e6:.1f} us/config (every {dual['sweeps_between']} sweeps), "
            f"fixed {dual['fixed']:.2f} s"
        )
    if ref:
        head += f"; reference {ref['cost'] * 1e6:.2f} us/measurement, phase {ref['phase']:.2f}"
    print(head)
    a, b, target = {}, {}, {}
    for name in ("phi2", "n"):
        value, value_err = values[name]
        bound = _bound(point, name, value)
        a[name] = dual["a"][name] if dual else 0.0
        b[name] = ref["b"][name] if ref and dual else 0.0
        if ref and not dual:  # the reference alone against exact values
            a[name] = ref["b"][name]
        room = (MARGIN * bound) ** 2 - value_err**2
        target[name] = math.sqrt(room) if room > 0 else float("nan")
        n_now = point.n_configs if dual else point.n_ref * REF_CHAINS
        sigma_now = math.hypot(
            a[name] / math.sqrt(n_now),
            b[name] / math.sqrt(point.n_ref * REF_CHAINS) if b[name] else 0.0,
            value_err,
        )
        print(
            f"    {name:4s} ref {value:+.5f}  a {a[name]:.4f}  b {b[name]:.4f}  bound {bound:.3g}"
            f" ({bound / abs(value) if value else math.nan:.3%})  current sigma/bound "
            f"{sigma_now / bound:.2f}"
        )
    if any(math.isnan(t) for t in target.values()):
        print("    the reference's own error exceeds the margin: the bound cannot be reached")
        return
    if dual and ref:
        n, m = _optimal(a, b, target, dual["cost"], ref["cost"])
        n_cfg, m_chain = _round_up(n), _round_up(m / REF_CHAINS)
        cpu = dual["fixed"] + dual["cost"] * n_cfg + ref["cost"] * m_chain * REF_CHAINS
        print(f"    -> n_configs {n_cfg}, n_ref {m_chain} per chain: about {cpu:.1f} CPU s")
    else:
        n = max((a[k] / target[k]) ** 2 for k in a)
        if dual:
            n_cfg = _round_up(n)
            cpu = dual["fixed"] + dual["cost"] * n_cfg
            print(f"    -> n_configs {n_cfg}: about {cpu:.1f} CPU s")
        else:
            m_chain = _round_up(n / REF_CHAINS)
            cpu = ref["cost"] * m_chain * REF_CHAINS
            print(f"    -> n_ref {m_chain} per chain: about {cpu:.1f} CPU s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="append", help="only these tables (repeatable)")
    parser.add_argument("--point", help="only points whose id contains this text")
    parser.add_argument("--pilot-configs", type=int, default=4000)
    parser.add_argument("--pilot-ref", type=int, default=25_000, help="per chain")
    args = parser.parse_args()
    numba.set_num_threads(1)
    # compile (or load from the numba cache) before anything is timed
    generate_ensemble(PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4), 16, seed=0, n_chains=2)
    sample_phi_reference(PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4), 100, seed=0, n_chains=1)
    tables = _tables()
    for name in args.table or list(tables):
        for point, spec_values in tables[name]:
            if args.point and args.point not in point.id:
                continue
            size(name, point, spec_values, args.pilot_configs, args.pilot_ref)


if __name__ == "__main__":
    main()
