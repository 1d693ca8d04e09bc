"""Throughput of the worm sampler on 3D and 4D lattices: decorrelated configurations per second.

The d-dimensional kernel (``scalar_ml.physics.worm_nd``) on cubes and hypercubes at the 3D/4D
counterparts of the seed's couplings (η = 2d + m² with the 2D points' m², λ = 1): η = 6.01, 6.25 in
3D and 8.01, 8.25 in 4D, at μ = 1.0 and 1.5 (dense phase, as the counting study) and at μ = 0.5
(below the onset). For each point the same chains (8 by default) are calibrated and thermalised,
then timed; reported per row:

* worm proposals per CPU-second of this process (independent of other load on the machine) and per
  wall-clock second;
* sweeps per CPU-second (chain-sweeps, summed over chains);
* τ_int (sweeps) = max over n and |φ|² (Γ-method over the chains of the timed run);
* decorrelated configurations per CPU-second and per wall-clock second = sweeps/s /
  max(1, ceil(2 τ_int)), the production rate of ``generate_ensemble``.

The last block times the d-dimensional kernel at d = 2 against the 2D kernel (``worm.py``) on the
same chains: both make the same trajectory (tested), so the ratio of their CPU times is the cost of
the general code. The runs are interleaved (A, B, A, B, ...) and the ratio is the median.

    python benchmarks/bench_sampler_nd.py            # full (several minutes)
    python benchmarks/bench_sampler_nd.py --quick    # short runs, fewer points
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numba

from scalar_ml.physics import Lattice, PhysicsParams
from scalar_ml.physics.autocorr import autocorrelation
from scalar_ml.physics.worm import WormChains
from scalar_ml.physics.worm_nd import WormChainsND

POINTS = [
    # lattice, (eta, lam, mu)
    ((8, 8, 8), (6.01, 1.0, 1.0)),
    ((8, 8, 8), (6.01, 1.0, 1.5)),
    ((8, 8, 8), (6.25, 1.0, 1.0)),
    ((8, 8, 8), (6.01, 1.0, 0.5)),
    ((16, 16, 16), (6.01, 1.0, 1.5)),
    ((24, 24, 24), (6.01, 1.0, 1.5)),
    ((4, 4, 4, 4), (8.01, 1.0, 1.0)),
    ((4, 4, 4, 4), (8.01, 1.0, 1.5)),
    ((8, 8, 8, 8), (8.01, 1.0, 1.5)),
    ((8, 8, 8, 8), (8.25, 1.0, 1.0)),
]
QUICK = [0, 1, 6, 8]


def _timed_run(chains: WormChainsND, seconds: float) -> dict[str, float]:
    """Run whole sweeps for about ``seconds`` of CPU time; return the rates."""
    chains.run(2, series=False)
    c0 = time.process_time()
    chains.run(5, series=False)
    probe = (time.process_time() - c0) / 5
    n_sweeps = max(40, int(seconds / max(probe, 1e-9)))
    before = chains.counters()
    c0, t0 = time.process_time(), time.perf_counter()
    out = chains.run(n_sweeps, series=True)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    after = chains.counters()
    worm = after["worm_proposals"] - before["worm_proposals"]
    tau = max(autocorrelation(out.series[:, :, i]).tau_int for i in (0, 1))
    spacing = max(1, math.ceil(2 * tau))
    sweeps = chains.n_chains * n_sweeps
    return {
        "worm_per_cpu_s": worm / cpu,
        "worm_per_s": worm / wall,
        "sweeps_per_cpu_s": sweeps / cpu,
        "tau": tau,
        "configs_per_cpu_s": sweeps / cpu / spacing,
        "configs_per_s": sweeps / wall / spacing,
        "n_sweeps": n_sweeps,
    }


def _kernel_ratio(seconds: float, rounds: int) -> tuple[float, float]:
    """Median CPU-time ratio (d-dim kernel at d = 2) / (2D kernel) on 32x32, interleaved runs."""
    params, lattice = PhysicsParams(4.01, 1.0, 1.0), Lattice(32, 32)
    pair = [WormChains(params, lattice, seed=1, n_chains=2), WormChainsND(params, lattice, 1, 2)]
    for chains in pair:
        chains.calibrate(10)
        chains.run(100, series=False)
    probe = time.process_time()
    pair[0].run(5, series=False)
    n = max(20, int(seconds / max((time.process_time() - probe) / 5, 1e-9)))
    ratios, per_cpu = [], []
    for _ in range(rounds):
        times = []
        for chains in pair:
            c0 = time.process_time()
            chains.run(n, series=False)
            times.append(time.process_time() - c0)
        ratios.append(times[1] / times[0])
        per_cpu.append(times[0])
    return statistics.median(ratios), statistics.median(per_cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs on a subset of points")
    parser.add_argument("--chains", type=int, default=8, help="independent chains (default 8)")
    parser.add_argument("--seconds", type=float, default=None, help="timed CPU seconds per run")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    points = [POINTS[i] for i in QUICK] if args.quick else POINTS
    print(
        f"threads {numba.get_num_threads()}, cores {os.cpu_count()}, chains {args.chains}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'lattice':>12} {'eta':>5} {'mu':>4} {'wps':>5} {'worm/cpu-s':>11} {'worm/s':>9} "
        f"{'sweep/cpu-s':>11} {'tau':>6} {'cfg/cpu-s':>10} {'cfg/s':>8}"
    )
    print(header)
    for shape, (eta, lam, mu) in points:
        lattice = Lattice(*shape)
        chains = WormChainsND(PhysicsParams(eta, lam, mu), lattice, seed=1, n_chains=args.chains)
        for _ in range(3):
            chains.calibrate(10)
        chains.run(200, series=False)  # thermalisation
        r = _timed_run(chains, seconds)
        print(
            f"{lattice!s:>12} {eta:>5g} {mu:>4g} {chains.worms_per_sweep:>5} "
            f"{r['worm_per_cpu_s']:>11.3g} {r['worm_per_s']:>9.3g} "
            f"{r['sweeps_per_cpu_s']:>11.3g} {r['tau']:>6.1f} {r['configs_per_cpu_s']:>10.3g} "
            f"{r['configs_per_s']:>8.3g}",
            flush=True,
        )
    ratio, per_sweep = _kernel_ratio(seconds / 2, 3 if args.quick else 7)
    print(
        f"d-dimensional kernel at d = 2 / 2D kernel, CPU time on 32x32 (same trajectories): "
        f"{ratio:.2f} (2D kernel: {per_sweep * 1e3:.2f} ms per sweep of 2 chains)"
    )


if __name__ == "__main__":
    main()
