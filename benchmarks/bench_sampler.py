"""What users pay for an ensemble: time to N decorrelated configurations and time to an error.

For each point (lattice, (η, λ, μ)) and thread count, the sampler of this checkout ("after") and of a
baseline commit ("before", ``--baseline``, default ``bbda1ca``, the sampler before issue 12) generate
ensembles with ``generate_ensemble`` from a cold start, with the same seeds, interleaved
(before, after, after, before, ...) and repeated, each in its own worker process (the baseline is
materialised with ``git archive`` into a temporary directory and gets its own ``NUMBA_CACHE_DIR``;
both workers compile their kernels on a small warm-up ensemble before anything is timed). Reported:

* **time to 256 configurations**: CPU seconds of ``generate_ensemble(..., n_configs=256)`` (and wall
  seconds, meaningful only on an idle machine) with its breakdown: calibration + thermalisation,
  pilot, production, measurement (the stage timers inside ``generate_ensemble``, switched to
  process CPU time in the worker for both versions);
* **production efficiency** ``1 / (err² · t)`` of ⟨|φ|²⟩ and ⟨n⟩: ``err`` is the error of the mean of
  the stored ensemble (Γ-method over its chains, as the physics tests and ``scalar_ml.sample`` compute
  it; it includes any correlation left between stored configurations), ``t`` the CPU seconds of the
  sweeps after the discarded thermalisation that produced it: the production stage, plus the pilot
  when its records are stored (after issue 12). Measured on ensembles of ``--eff-n`` configurations
  per lattice (8×8: 20000, 60×4: 6000, 32×32: 2000, 64×64: 800; 128×128 uses its 256-configuration
  runs);
* **reported estimates**: the same efficiency with the error that ``python -m scalar_ml.sample``
  reports, which is what a user measuring ⟨|φ|²⟩ or ⟨n⟩ pays for: after issue 12 the estimate from
  every sweep after the thermalisation (``meta["estimates"]``), before it the stored ensemble's
  (the same sweeps and the same ``t``; only the information used differs);
* ratios after / before (> 1 is better): the speed-up as median and [min, max] over the repeats;
  the efficiency of the repeats combined (errors by inverse-variance weighting, times summed: what
  pooling the ensembles would give; one ``err²`` from 800 configurations is only good to about
  ±20 %) with the [min, max] of single repeats; and the load average during the run.

CPU time is the process CPU time of the worker (all its threads), so the ratios hold under other
load; wall times do not. ``--quick`` runs fewer points (no 64×64 at μ = 1.5, no 128×128) once, on one
thread, with the efficiency taken from the 256-configuration runs.

    python benchmarks/bench_sampler.py                 # full: README table (an hour on 2 idle cores)
    python benchmarks/bench_sampler.py --quick         # a few minutes
    python benchmarks/bench_sampler.py --baseline HEAD~3 --threads 1 --repeats 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "bbda1ca"
POINTS = [
    (8, 8, 4.01, 1.0, 1.0),
    (8, 8, 4.01, 1.0, 1.5),
    (60, 4, 4.01, 1.0, 1.0),
    (60, 4, 4.01, 1.0, 1.5),
    (32, 32, 4.01, 1.0, 1.0),
    (32, 32, 4.01, 1.0, 1.5),
    (64, 64, 4.01, 1.0, 1.0),
    (64, 64, 4.01, 1.0, 1.5),
    (128, 128, 4.01, 1.0, 1.0),
]
QUICK_POINTS = POINTS[:7]
EFF_N = {(8, 8): 20000, (60, 4): 6000, (32, 32): 2000, (64, 64): 800}
N_DATASET = 256


# ---- worker (runs with the checkout under test first on sys.path) ----------------------------


class _CpuClock:
    """Stand-in for the ``time`` module inside ``scalar_ml.physics.ensemble``: CPU-second timers."""

    perf_counter = staticmethod(time.process_time)
    process_time = staticmethod(time.process_time)


def _worker() -> None:
    import numba
    import numpy as np

    import scalar_ml
    import scalar_ml.physics.ensemble as ens_mod
    from scalar_ml.physics import Lattice, PhysicsParams
    from scalar_ml.physics.autocorr import autocorrelation

    ens_mod.time = _CpuClock()  # the stage timings in meta["timings"] become CPU seconds
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    ens_mod.generate_ensemble(PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4), 16, seed=0, n_chains=2)
    print(json.dumps({"ready": scalar_ml.__file__}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        numba.set_num_threads(job["threads"])
        params = PhysicsParams(job["eta"], job["lam"], job["mu"])
        lattice = Lattice(job["nt"], job["nx"])
        w0, c0 = time.perf_counter(), time.process_time()
        ens = ens_mod.generate_ensemble(params, lattice, job["n"], seed=job["seed"])
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        meta = ens.meta
        bounds = np.cumsum(meta["chain_lengths"])[:-1]
        stats = {}
        for name in ("n", "phi2"):
            parts = [p for p in np.split(getattr(ens, name), bounds) if p.size >= 2]
            res = autocorrelation(parts)
            stats[name] = {"mean": res.mean, "err": res.err, "tau_stored": res.tau_int}
        t = meta["timings"]
        stages = {
            "therm": t.get("calibration_s", 0.0) + t["therm_s"] + t.get("setup_s", 0.0),
            "pilot": t["pilot_s"],
            "production": t["production_s"],
            "measure": t["measure_s"],
        }
        # what `python -m scalar_ml.sample` reports: the estimates from every sweep where the
        # sampler makes them (after issue 12), else the stored ensemble's (before)
        estimates = meta.get("estimates") or {}
        reported = {
            name: (
                {"mean": estimates[name]["mean"], "err": estimates[name]["err"]}
                if estimates.get(name, {}).get("err")
                else stats[name]
            )
            for name in ("n", "phi2")
        }
        pilot_stored = meta.get("configs_from_pilot", 0) > 0
        result = {
            "wall": wall,
            "cpu": cpu,
            "stages": stages,
            "t_production": stages["production"] + (stages["pilot"] if pilot_stored else 0.0),
            "stats": stats,
            "reported": reported,
            "tau": max(meta["tau_int"]["n"], meta["tau_int"]["phi2"]),
            "spacing": meta["sweeps_between"],
            "sweeps_per_chain": meta["sweeps_per_chain"],
            "load": os.getloadavg()[0],
        }
        print(json.dumps(result), flush=True)


# ---- driver ------------------------------------------------------------------------------------


class Worker:
    """A persistent worker process running one checkout's sampler."""

    def __init__(self, label: str, source: Path, numba_cache: Path | None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        if numba_cache is not None:
            env["NUMBA_CACHE_DIR"] = str(numba_cache)
        self.label = label
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            cwd=str(source),
        )
        ready = self._read()
        expected = str((source / "scalar_ml" / "__init__.py").resolve())
        if str(Path(ready["ready"]).resolve()) != expected:
            raise RuntimeError(f"{label} worker imported {ready['ready']}, expected {expected}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label} worker died (exit status {self.proc.wait()})")
        return json.loads(line)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _materialise(ref: str, into: Path) -> str:
    """Extract commit ``ref`` of this repository into ``into``; return its full hash."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    archive = into / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", sha], check=True, stdout=fh)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "src", filter="data")
    archive.unlink()
    return sha


@dataclass
class Pair:
    """One before/after measurement of one kind at one point, thread count and seed."""

    before: dict[str, Any]
    after: dict[str, Any]


def _ratio_text(values: list[float]) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} [{min(values):.2f}, {max(values):.2f}]"


def _efficiency(rs: list[dict[str, Any]], name: str, source: str = "stats") -> float:
    """``1 / (err² t)`` of the repeats combined: inverse-variance weights, total time.

    ``source``: ``"stats"``, the error of the stored ensemble's mean; ``"reported"``, the error
    that ``scalar_ml.sample`` reports (every sweep after issue 12, the stored ensemble before).
    """
    errs = [r[source][name]["err"] for r in rs]
    weight = sum(1.0 / e**2 for e in errs if e > 0)
    t = sum(r["t_production"] for r in rs)
    return weight / t if weight > 0 and t > 0 else math.nan


def _efficiency_text(pairs: list[Pair], name: str, source: str = "stats") -> str:
    pooled = _efficiency([p.after for p in pairs], name, source) / _efficiency(
        [p.before for p in pairs], name, source
    )
    each = [
        _efficiency([p.after], name, source) / _efficiency([p.before], name, source) for p in pairs
    ]
    if len(pairs) == 1:
        return f"{pooled:.2f}"
    return f"{pooled:.2f} [{min(each):.2f}, {max(each):.2f}]"


def _stage_text(rs: list[dict[str, Any]]) -> str:
    med = {k: statistics.median(r["stages"][k] for r in rs) for k in rs[0]["stages"]}
    return f"{med['therm']:.2f} / {med['pilot']:.2f} / {med['production']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer points, one repeat, 1 thread")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref of 'before'")
    parser.add_argument("--repeats", type=int, default=None, help="seeds per point (default 3)")
    parser.add_argument("--threads", default=None, help="comma-separated (default 1,all cores)")
    parser.add_argument(
        "--points", default=None, help="subset, e.g. 8x8:1.0,32x32:1.5 (eta = 4.01, lam = 1)"
    )
    parser.add_argument("--jsonl", default=None, help="also append every measurement to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker()
        return
    import numba

    all_threads = numba.config.NUMBA_NUM_THREADS
    if args.threads is not None:
        threads = [int(t) for t in args.threads.split(",")]
    elif args.quick or all_threads == 1:
        threads = [1]
    else:
        threads = [1, all_threads]
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    points = QUICK_POINTS if args.quick else POINTS
    if args.points is not None:
        points = []
        for item in args.points.split(","):
            size, mu = item.split(":")
            nt, nx = (int(v) for v in size.split("x"))
            points.append((nt, nx, 4.01, 1.0, float(mu)))
    if repeats < 1 or any(t < 1 or t > all_threads for t in threads):
        parser.error(f"need repeats >= 1 and 1 <= threads <= {all_threads}")

    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench_sampler_") as tmp:
        tmp_path = Path(tmp)
        sha = _materialise(args.baseline, tmp_path)
        head = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(
            f"before: {args.baseline} ({sha[:10]}), after: this checkout ({head}); "
            f"{os.cpu_count()} CPUs, threads {threads}, repeats {repeats}; "
            f"load average (1 min) at start {loads[0]:.2f}",
            flush=True,
        )
        workers = {
            "before": Worker("before", tmp_path / "src", tmp_path / "numba_cache"),
            "after": Worker("after", REPO, None),
        }
        results: dict[tuple, list[Pair]] = {}
        try:
            order = 0
            for rep in range(repeats):
                for thr in threads:
                    for nt, nx, eta, lam, mu in points:
                        kinds = {"t256": N_DATASET}
                        if not args.quick and (nt, nx) in EFF_N:
                            kinds["eff"] = EFF_N[(nt, nx)]
                        for kind, n in kinds.items():
                            job = {"nt": nt, "nx": nx, "eta": eta, "lam": lam, "mu": mu}
                            job.update({"n": n, "seed": 1000 + rep, "threads": thr})
                            seq = ("before", "after") if order % 2 == 0 else ("after", "before")
                            order += 1
                            out = {label: workers[label].run(job) for label in seq}
                            loads.append(out["after"]["load"])
                            results.setdefault((nt, nx, eta, lam, mu, thr, kind), []).append(
                                Pair(out["before"], out["after"])
                            )
                            if args.jsonl:
                                with open(args.jsonl, "a") as fh:
                                    fh.write(json.dumps({"job": job, **out}) + "\n")
                            b, a = out["before"], out["after"]
                            print(
                                f"  rep {rep} {nt}x{nx} mu={mu} thr={thr} {kind} N={n}: "
                                f"cpu {b['cpu']:.2f} -> {a['cpu']:.2f} s, "
                                f"tau {b['tau']:.1f} -> {a['tau']:.1f}, "
                                f"spacing {b['spacing']} -> {a['spacing']}, "
                                f"load {a['load']:.1f}",
                                flush=True,
                            )
        finally:
            for w in workers.values():
                with contextlib.suppress(Exception):
                    w.close()

    print()
    print(
        f"load average (1 min): start {loads[0]:.2f}, during min {min(loads):.2f} "
        f"median {statistics.median(loads):.2f} max {max(loads):.2f} "
        f"({os.cpu_count()} CPUs)"
    )
    print(
        f"Ratios after/before (> 1: faster or more efficient) over {repeats} seed(s): speed-up "
        "median [min, max]; efficiency of the seeds combined (inverse-variance weights, total "
        "time) [min, max of single seeds]. CPU seconds; stages: calibration + thermalisation / "
        "pilot / production (medians)."
    )
    print()
    print(
        "| lattice | (η, λ, μ) | threads | time to 256 configs, CPU s: before → after | speed-up | "
        "stages before | stages after | production efficiency ⟨\\|φ\\|²⟩ | ⟨n⟩ | "
        "reported estimates ⟨\\|φ\\|²⟩ | ⟨n⟩ |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for thr in threads:
        for nt, nx, eta, lam, mu in points:
            t256 = results[(nt, nx, eta, lam, mu, thr, "t256")]
            eff = results.get((nt, nx, eta, lam, mu, thr, "eff"), t256)
            before = statistics.median(p.before["cpu"] for p in t256)
            after = statistics.median(p.after["cpu"] for p in t256)
            speed = [p.before["cpu"] / p.after["cpu"] for p in t256]
            eff_ratio = {name: _efficiency_text(eff, name) for name in ("phi2", "n")}
            rep_ratio = {name: _efficiency_text(eff, name, "reported") for name in ("phi2", "n")}
            note = "" if (nt, nx, eta, lam, mu, thr, "eff") in results else " (N = 256)"
            print(
                f"| {nt}×{nx} | ({eta:g}, {lam:g}, {mu:g}) | {thr} | {before:.2f} → {after:.2f} | "
                f"{_ratio_text(speed)} | {_stage_text([p.before for p in t256])} | "
                f"{_stage_text([p.after for p in t256])} | {eff_ratio['phi2']}{note} | "
                f"{eff_ratio['n']} | {rep_ratio['phi2']} | {rep_ratio['n']} |"
            )
    print()
    print("Wall seconds to 256 configs (median; meaningful only on an idle machine):")
    for thr in threads:
        line = []
        for nt, nx, eta, lam, mu in points:
            t256 = results[(nt, nx, eta, lam, mu, thr, "t256")]
            b = statistics.median(p.before["wall"] for p in t256)
            a = statistics.median(p.after["wall"] for p in t256)
            line.append(f"{nt}x{nx}/{mu:g}: {b:.2f} -> {a:.2f}")
        print(f"  {thr} thread(s): " + "; ".join(line))


if __name__ == "__main__":
    main()
