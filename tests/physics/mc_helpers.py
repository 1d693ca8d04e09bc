"""Large Monte Carlo runs of the physics tests in bounded memory: chunked, the reference binned.

The power requirements (``physics_tolerances``) ask for up to about 10^6 dual configurations and
10^7 reference measurements per point. ``generate_ensemble`` keeps every configuration
(``4·V`` int32, twice while it assembles them) and ``sample_phi_reference`` every measurement
(11 float64 series), so one call of that size would take gigabytes. Here

* the dual side runs in calls of at most :data:`DUAL_CHUNK` configurations with seeds
  ``seed + 1000·i``; each call's chains are independent chains of the combined series, and only
  the per-configuration ``n`` and ``|φ|²`` are kept;
* the reference runs in calls of at most :data:`REF_CHUNK` measurements per chain (seeds
  ``seed + 1000·i``, each call's chains are further independent chains), and every series is
  averaged over bins of :data:`REF_BIN` consecutive measurements. Binning leaves the means and
  the ratio estimator unchanged and keeps the Γ-method's error (the bins are a coarser series of
  the same chain; τ_int of the reweighted observables is 1-8 sweeps, far below a chain's length).

The extra thermalisation per call costs below 1 % (the reference: 1000 sweeps per chain and call;
the dual: its automatic thermalisation, 100-5000 sweeps per chain).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from physics_tolerances import N_SIGMA, McPoint, Shifted, check_mc

from scalar_ml.physics import (
    AutocorrResult,
    Lattice,
    PhiReferenceRun,
    PhysicsParams,
    autocorrelation,
    generate_ensemble,
    sample_phi_reference,
)

#: Dual configurations per generate_ensemble call (4x4: 100000 x 256 bytes = 26 MB, twice).
DUAL_CHUNK = 100_000
#: Reference measurements per chain and sample_phi_reference call (4 chains: about 100 MB).
REF_CHUNK = 250_000
#: Reference measurements averaged into one bin.
REF_BIN = 10
#: Chains of the φ reference per call.
REF_CHAINS = 4


@dataclass
class DualSeries:
    """Per-configuration ``n`` and ``|φ|²`` of a dual run, chain by chain (chunks' chains appended)."""

    chains: dict[str, list[np.ndarray]]

    def stats(self, name: str, offset: float = 0.0) -> AutocorrResult:
        """Mean, Γ-method error and τ_int; ``offset`` is added to every sample."""
        return autocorrelation([c + offset for c in self.chains[name] if c.size >= 2])

    def data(self, name: str) -> Shifted:
        """The observable as shiftable data for :func:`physics_tolerances.check_mc`."""
        return lambda offset: self.stats(name, offset)

    def values(self, name: str) -> np.ndarray:
        return np.concatenate(self.chains[name])

    def __len__(self) -> int:
        return int(sum(c.size for c in self.chains["n"]))


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def dual_series(point: McPoint, seed: int) -> DualSeries:
    """``point.n_configs`` dual configurations in chunks (module docstring)."""
    params, lattice = PhysicsParams(point.eta, point.lam, point.mu), point.lattice
    chains: dict[str, list[np.ndarray]] = {"n": [], "phi2": []}
    for i, n_configs in enumerate(_chunks(point.n_configs, DUAL_CHUNK)):
        ens = generate_ensemble(
            params, lattice, n_configs, seed=seed + 1000 * i, n_chains=point.n_chains
        )
        bounds = np.cumsum(ens.meta["chain_lengths"])[:-1]
        for name in chains:
            chains[name].extend(np.split(np.asarray(getattr(ens, name), dtype=np.float64), bounds))
        del ens
    return DualSeries(chains)


def _binned(series: np.ndarray) -> np.ndarray:
    """``(chains, n)`` -> ``(chains, n // REF_BIN)`` bin means (a trailing partial bin dropped)."""
    n_bins = series.shape[1] // REF_BIN
    return series[:, : n_bins * REF_BIN].reshape(series.shape[0], n_bins, REF_BIN).mean(axis=2)


@functools.cache
def reference_run(
    eta: float,
    lam: float,
    mu: float,
    nt: int,
    nx: int,
    n_meas: int,
    seed: int,
    extra_space: tuple[int, ...] = (),
) -> PhiReferenceRun:
    """``n_meas`` reference measurements per chain in chunks, binned (module docstring).

    ``n_meas`` is split into equal calls of at most :data:`REF_CHUNK` (rounded up). The result's
    series are ``(REF_CHAINS · calls, bins)`` arrays of bin means; ``meta`` is the first call's,
    with ``n_meas`` (per chain and call), ``bin`` and ``calls``.
    """
    params, lattice = PhysicsParams(eta, lam, mu), Lattice(nt, nx, *extra_space)
    n_calls = -(-n_meas // REF_CHUNK)
    size = -(-n_meas // n_calls)  # equal calls (their series stack), together >= n_meas
    parts: list[PhiReferenceRun] = []
    for i in range(n_calls):
        run = sample_phi_reference(params, lattice, size, seed=seed + 1000 * i, n_chains=REF_CHAINS)
        parts.append(
            PhiReferenceRun(
                phase=_binned(run.phase),
                phase_sin=_binned(run.phase_sin),
                numerators={k: _binned(v) for k, v in run.numerators.items()},
                quenched={k: _binned(v) for k, v in run.quenched.items()},
                meta=run.meta,
            )
        )
        del run

    def stack(get) -> np.ndarray:
        return np.concatenate([get(p) for p in parts])

    return PhiReferenceRun(
        phase=stack(lambda p: p.phase),
        phase_sin=stack(lambda p: p.phase_sin),
        numerators={k: stack(lambda p, k=k: p.numerators[k]) for k in parts[0].numerators},
        quenched={k: stack(lambda p, k=k: p.quenched[k]) for k in parts[0].quenched},
        meta={**parts[0].meta, "bin": REF_BIN, "calls": n_calls},
    )


#: Smallest average phase of a φ-reference run: below it the reweighting is too noisy to referee.
MIN_PHASE = 0.3


def check_phase(ref: PhiReferenceRun, label: str) -> None:
    """The reference's average phase is at least :data:`MIN_PHASE`, and <sin S_I> = 0 (charge
    conjugation) within its error."""
    phase = ref.average_phase()
    assert phase.mean >= MIN_PHASE, f"{label}: average phase {phase.mean:.3f} < {MIN_PHASE}"
    sin = autocorrelation(ref.phase_sin)
    assert abs(sin.mean) <= N_SIGMA * sin.err + 1e-12, f"{label}: <sin S_I> = {sin}"


def compare_with_reference(
    ref: PhiReferenceRun, dual: DualSeries, point: McPoint, label: str
) -> None:
    """Dual <|phi|^2> and <n> against the reweighted φ reference: the phase checks, then
    :func:`physics_tolerances.check_mc` (power, agreement, negative control) per observable.

    At μ = 0 the reference's <n> numerator vanishes identically (<n> = 0 exactly) and the dual
    windings (about e^{-Nt E} rare) must average to 0 within the stated error. Only on a long
    lattice (Nt >= 16) may no configuration wind at all: then the dual n is exactly 0 too.
    """
    check_phase(ref, label)
    for name, pretty in (("phi2", "<|phi|^2>"), ("n", "<n>")):
        expected = ref.observable(name)
        if point.mu == 0.0 and name == "n":
            assert expected.mean == expected.err == 0.0, f"{label} {pretty}: {expected}"
            if not np.any(dual.values("n")):
                assert point.nt >= 16, f"{label}: no winding at all on a short lattice"
                continue
        check_mc(
            dual.data(name),
            expected.mean,
            f"{label} {pretty} dual vs phi",
            expected.err,
            **point.power(name),
        )
