"""Throughput of the worm sampler: worm proposals/s, sweeps/s, decorrelated configurations/s.

For each lattice (8×8, 32×32, 64×64, 60×4) and couplings (η, λ, μ) = (4.01, 1, 1.0), (4.01, 1, 1.5),
(4.25, 1, 1.0), the same set of chains (8 by default) is thermalised, then timed on one thread and
on all cores (numba.set_num_threads). Reported per row:

* worm proposals/s: worm start + step + stop proposals per second of wall time of the whole sweep
  (the l updates run inside the same time), summed over chains;
* l proposals/s; sweeps/s (chain-sweeps per second, summed over chains);
* τ_int (sweeps) = max over n and |φ|² (Γ-method over the chains of the timed run), and
  decorrelated configurations/s = sweeps/s / max(1, ceil(2 τ_int)), the production rate of
  ``generate_ensemble``;
* the all-cores / one-thread speed ratio of worm proposals per wall-clock second (meaningful only
  on an otherwise idle machine), and worm proposals per CPU-second of this process, which does not
  depend on other load: its all-cores / one-thread ratio ("cpu eff") is the parallel efficiency
  that the wall-clock speed-up reaches when the cores are free.

    python benchmarks/bench_sampler.py            # full (a few minutes)
    python benchmarks/bench_sampler.py --quick    # short runs, fewer points
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numba
import numpy as np

from scalar_ml.physics import Lattice, PhysicsParams
from scalar_ml.physics.autocorr import autocorrelation
from scalar_ml.physics.worm import WormChains

LATTICES = [(8, 8), (32, 32), (64, 64), (60, 4)]
COUPLINGS = [(4.01, 1.0, 1.0), (4.01, 1.0, 1.5), (4.25, 1.0, 1.0)]


def _timed_run(chains: WormChains, seconds: float, threads: int) -> dict[str, float]:
    """Run whole sweeps for about ``seconds`` on ``threads`` threads; return the rates."""
    numba.set_num_threads(threads)
    chains.run(2, series=False)  # make sure the thread pool is up
    before = chains.counters()
    # choose the number of sweeps from a short probe so that the timed run lasts ~seconds
    t0 = time.perf_counter()
    chains.run(5, series=False)
    probe = (time.perf_counter() - t0) / 5
    n_sweeps = max(20, int(seconds / max(probe, 1e-9)))
    mid = chains.counters()
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = chains.run(n_sweeps, series=True)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    after = chains.counters()
    del before
    worm = after["worm_proposals"] - mid["worm_proposals"]
    lprop = after["l_proposed"] - mid["l_proposed"]
    tau = max(autocorrelation(out.series[:, :, i]).tau_int for i in (0, 1))
    sweeps_per_s = chains.n_chains * n_sweeps / wall
    return {
        "worm_per_s": worm / wall,
        "worm_per_cpu_s": worm / cpu,
        "l_per_s": lprop / wall,
        "sweeps_per_s": sweeps_per_s,
        "tau": tau,
        "configs_per_s": sweeps_per_s / max(1, math.ceil(2 * tau)),
        "n_sweeps": n_sweeps,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs on a subset of points")
    parser.add_argument("--chains", type=int, default=8, help="independent chains (default 8)")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per run")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else (0.5 if args.quick else 3.0)
    lattices = LATTICES if not args.quick else [(8, 8), (60, 4)]
    couplings = COUPLINGS if not args.quick else COUPLINGS[:2]
    all_threads = numba.config.NUMBA_NUM_THREADS
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"numba {numba.__version__}, threading layer threads: {all_threads}, cpus: {os.cpu_count()}, "
        f"load average (1 min) at start: {load:.2f}, chains: {args.chains}, ~{seconds:g} s per run"
    )
    header = (
        f"{'lattice':>7} {'eta':>5} {'mu':>4} {'thr':>3} {'worm prop/s':>12} {'l prop/s':>10} "
        f"{'sweeps/s':>10} {'tau_int':>8} {'configs/s':>10} {'speedup':>7} {'worm/cpu-s':>11} "
        f"{'cpu eff':>7}"
    )
    print(header)
    print("-" * len(header))
    single = []
    for nt, nx in lattices:
        for eta, lam, mu in couplings:
            chains = WormChains(
                PhysicsParams(eta, lam, mu), Lattice(nt, nx), seed=1, n_chains=args.chains
            )
            numba.set_num_threads(all_threads)
            chains.calibrate()
            chains.run(200, series=False)  # thermalise
            rows = [(1, _timed_run(chains, seconds, 1))]
            if all_threads > 1:
                rows.append((all_threads, _timed_run(chains, seconds, all_threads)))
            base = rows[0][1]["worm_per_s"]
            base_cpu = rows[0][1]["worm_per_cpu_s"]
            single.append(base_cpu)
            for threads, r in rows:
                print(
                    f"{nt}x{nx:<4} {eta:5.2f} {mu:4.2f} {threads:3d} {r['worm_per_s']:12.3e} "
                    f"{r['l_per_s']:10.3e} {r['sweeps_per_s']:10.3e} {r['tau']:8.1f} "
                    f"{r['configs_per_s']:10.3e} {r['worm_per_s'] / base:7.2f} "
                    f"{r['worm_per_cpu_s']:11.3e} {r['worm_per_cpu_s'] / base_cpu:7.2f}"
                )
    numba.set_num_threads(all_threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"one thread: worm proposals per CPU-second min {min(single):.3e}, geometric mean "
        f"{float(np.exp(np.mean(np.log(single)))):.3e}; load average (1 min) at end: {load:.2f}"
    )


if __name__ == "__main__":
    main()
