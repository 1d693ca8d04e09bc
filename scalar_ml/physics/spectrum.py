r"""The energy of the lightest charged state from the worm's two-point function (d = 3, 4).

Silver Blaze (SPEC §3; Gattringer & Kloiber, arXiv:1206.2954): at low temperature the charge
density stays exactly zero while μ is below the energy :math:`E` of the lightest state with charge
one, and rises above it. Gattringer and Kloiber compared the onset with :math:`E` measured from a
two-point function at μ = 0; :func:`charged_state_energy` does the same with the dual sampler.

**Correlator.** The open worm of :mod:`.worm_nd` has the weight of the configurations of
:math:`\langle\phi_{\rm tail}\,\phi^*_{\rm head}\rangle` (or its conjugate): the counts of its time
separation :math:`\tau = t_{\rm head} - t_{\rm tail} \bmod N_0`, one per worm proposal
(:attr:`~.worm_nd.WormChainsND.time_correlator`), are proportional to the zero-momentum two-point
function

.. math::

    C(\tau) = \sum_{\vec x} \langle \phi^*(\tau, \vec x)\, \phi(0, \vec 0)\rangle + {\rm c.c.}
      = \sum_n |A_n|^2 \big(e^{-E_n \tau} + e^{-E_n (N_0 - \tau)}\big)

at μ = 0 (periodic time; the sum runs over the states of charge ±1 at zero momentum). The free
field gives :math:`\cosh E = (\eta - 2(d-1))/2`, the point where the free theory stops existing at
:math:`\mu = E` (checked in ``tests/physics/test_spectrum.py``).

**Energy.** The effective energy :math:`E_{\rm eff}(\tau)` solves
:math:`C(\tau)/C(\tau+1) = \cosh(E(N_0/2 - \tau))/\cosh(E(N_0/2 - \tau - 1))`; it is flat once the
excited states have died out. :math:`E` is the error-weighted mean of :math:`E_{\rm eff}(\tau)` over
``tau_min ≤ τ < tau_max`` (weights from the full sample); by default ``tau_max`` is the largest
``τ + 1 ≤ N_0/2`` up to which every separation was counted at least ``MIN_COUNTS`` times (the counts
fall like :math:`e^{-E\tau}`: on a long lattice the worm never reaches ``N_0/2``). Errors:
jackknife over the ``n_chains × n_blocks`` block histograms (blocks much longer than τ_int, so
nearly independent).

>>> from scalar_ml.physics.params import Lattice, PhysicsParams
>>> res = charged_state_energy(PhysicsParams(6.5, 0.0, 0.0), Lattice(12, 4, 4), seed=1,
...                            n_chains=4, n_blocks=8, sweeps_per_block=200)
>>> exact = float(np.arccosh((6.5 - 4) / 2))             # 0.6931
>>> abs(res.energy - exact) < 4 * res.energy_err, res.energy_err < 0.02
(True, True)

From the command line (prints C(τ), E_eff(τ) with errors, and E)::

    python -m scalar_ml.physics.spectrum --lattice 64x6x6 --eta 6.01 --lam 1 --seed 1
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalar_ml.physics.params import Lattice, PhysicsParams, validate_point
from scalar_ml.physics.worm_nd import WormChainsND

__all__ = ["MIN_COUNTS", "Spectrum", "charged_state_energy", "effective_energy"]

#: Fewest counts of a time separation used for the effective energy (relative error <~ 3 %).
MIN_COUNTS = 1000


def effective_energy(corr: np.ndarray) -> np.ndarray:
    """:math:`E_{\\rm eff}(\\tau)` for ``τ = 0 … N_0/2 − 1`` of a periodic correlator ``C(τ)``
    (length ``N_0``; NaN where ``C(τ)/C(τ+1)`` has no cosh solution, e.g. ``≤ 1``).

    >>> nt, e = 16, 0.4
    >>> c = np.cosh(e * (nt / 2 - np.arange(nt)))
    >>> np.allclose(effective_energy(c), e)
    True
    """
    c = np.asarray(corr, dtype=np.float64)
    nt = c.size
    half = nt / 2
    out = np.full(nt // 2, np.nan)
    for tau in range(nt // 2):
        if c[tau + 1] <= 0 or c[tau] <= 0:
            continue
        ratio = c[tau] / c[tau + 1]
        if not ratio > 1.0:
            continue

        def g(e: float, tau: int = tau, ratio: float = ratio) -> float:
            return math.cosh(e * (half - tau)) / math.cosh(e * (half - tau - 1)) - ratio

        lo, hi = 1e-9, 1.0
        while g(hi) < 0 and hi < 50:
            hi *= 2
        if g(lo) > 0 or g(hi) < 0:
            continue
        for _ in range(200):  # bisection: g increases with e for tau < N_0/2
            mid = 0.5 * (lo + hi)
            if g(mid) < 0:
                lo = mid
            else:
                hi = mid
        out[tau] = 0.5 * (lo + hi)
    return out


@dataclass
class Spectrum:
    """Result of :func:`charged_state_energy`.

    Attributes:
        energy, energy_err: :math:`E` and its jackknife error.
        correlator, correlator_err: :math:`C(\\tau)/C(0)` and its jackknife error (length N_0).
        effective, effective_err: :math:`E_{\\rm eff}(\\tau)`, τ = 0 … N_0/2 − 1.
        window: the τ range ``(tau_min, tau_max)`` averaged for ``energy``.
        meta: parameters, lattice, seed, run lengths, counts.
    """

    energy: float
    energy_err: float
    correlator: np.ndarray
    correlator_err: np.ndarray
    effective: np.ndarray
    effective_err: np.ndarray
    window: tuple[int, int]
    meta: dict[str, Any] = field(default_factory=dict)


def charged_state_energy(
    params: PhysicsParams,
    lattice: Lattice,
    *,
    seed: int,
    n_chains: int = 8,
    n_therm: int = 200,
    n_blocks: int = 20,
    sweeps_per_block: int = 500,
    tau_min: int = 2,
    tau_max: int | None = None,
) -> Spectrum:
    """The energy of the lightest charged state at ``params`` (use μ = 0) on a 3D or 4D lattice.

    Runs ``n_chains`` worm chains (calibrated, ``n_therm`` sweeps of thermalisation), then
    ``n_blocks`` blocks of ``sweeps_per_block`` sweeps recording the head–tail time separations
    (module docstring). The plateau is ``tau_min ≤ τ < tau_max`` (default ``tau_max``: module
    docstring).

    Raises ``ValueError`` for bad arguments, a 2D lattice (its kernel has no correlator), or a
    window where the effective energy is undefined (too few counts at large τ).
    """
    validate_point(params, lattice)
    if lattice.dims == 2:
        raise ValueError("charged_state_energy needs a 3D or 4D lattice (the d-dimensional kernel)")
    for name, value, minimum in (
        ("n_chains", n_chains, 1),
        ("n_therm", n_therm, 0),
        ("n_blocks", n_blocks, 2),
        ("sweeps_per_block", sweeps_per_block, 1),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    nt = lattice.nt
    if isinstance(tau_min, bool) or not isinstance(tau_min, int) or not 0 <= tau_min < nt // 2:
        raise ValueError(f"tau_min must be an integer in [0, {nt // 2}), got {tau_min!r}")
    if tau_max is not None and not (isinstance(tau_max, int) and tau_min < tau_max <= nt // 2):
        raise ValueError(f"tau_max must be an integer in ({tau_min}, {nt // 2}], got {tau_max!r}")
    chains = WormChainsND(params, lattice, seed, n_chains, correlator=True)
    chains.calibrate(20)
    chains.run(n_therm, series=False)
    blocks = []
    before = chains.time_correlator
    for _ in range(n_blocks):
        chains.run(sweeps_per_block, series=False)
        now = chains.time_correlator
        blocks.append(now - before)
        before = now
    samples = np.concatenate(blocks).astype(np.float64)  # (n_blocks * n_chains, N_0)
    total = samples.sum(axis=0)
    if tau_max is None:
        tau_max = 0
        while tau_max < nt // 2 and total[tau_max + 1] >= MIN_COUNTS:
            tau_max += 1
    if tau_max <= tau_min or np.any(total[: tau_max + 1] == 0):
        raise ValueError(
            f"the worm reached the time separations tau <= {tau_min + 1} fewer than "
            f"{MIN_COUNTS} times (counts {total[: tau_min + 2].astype(int).tolist()}): run longer"
        )
    window = np.arange(tau_min, tau_max)

    def energy_of(hist: np.ndarray, weights: np.ndarray | None) -> tuple[float, np.ndarray]:
        eff = effective_energy(hist / hist[0])
        vals = eff[window]
        if np.any(~np.isfinite(vals)):
            return math.nan, eff
        w = np.ones_like(vals) if weights is None else weights
        return float(np.sum(w * vals) / np.sum(w)), eff

    # jackknife over the block samples
    m = samples.shape[0]
    jack_corr = np.array([(total - s) / (total - s)[0] for s in samples])
    jack_eff = np.array([effective_energy(c) for c in jack_corr])
    eff_err = np.sqrt((m - 1) / m * np.nansum((jack_eff - jack_eff.mean(0)) ** 2, axis=0))
    weights = 1.0 / np.maximum(eff_err[window], 1e-12) ** 2
    energy, eff = energy_of(total, weights)
    if not math.isfinite(energy):
        raise ValueError(
            f"the effective energy is undefined in the window tau = {tau_min} .. {tau_max - 1} "
            "(too few counts at large separations): run longer or lower tau_min"
        )
    jack_e = np.array([energy_of(total - s, weights)[0] for s in samples])
    energy_err = float(np.sqrt((m - 1) / m * np.sum((jack_e - jack_e.mean()) ** 2)))
    corr = total / total[0]
    corr_err = np.sqrt((m - 1) / m * np.sum((jack_corr - jack_corr.mean(0)) ** 2, axis=0))
    return Spectrum(
        energy=energy,
        energy_err=energy_err,
        correlator=corr,
        correlator_err=corr_err,
        effective=eff,
        effective_err=eff_err,
        window=(int(tau_min), int(tau_max)),
        meta={
            "params": params.as_dict(),
            "lattice": lattice.as_dict(),
            "seed": int(seed),
            "n_chains": int(n_chains),
            "n_therm": int(n_therm),
            "n_blocks": int(n_blocks),
            "sweeps_per_block": int(sweeps_per_block),
            "worms_per_sweep": int(chains.worms_per_sweep),
            "counts": int(total.sum()),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scalar_ml.physics.spectrum``: :func:`charged_state_energy` at μ = 0, printed."""
    parser = argparse.ArgumentParser(
        prog="python -m scalar_ml.physics.spectrum",
        description="energy of the lightest charged state from the worm's two-point function",
    )
    parser.add_argument("--lattice", required=True, help="a 3D or 4D lattice, e.g. 64x6x6")
    parser.add_argument("--eta", type=float, required=True)
    parser.add_argument("--lam", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--therm", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--sweeps", type=int, default=400, help="sweeps per block")
    parser.add_argument("--tau-min", type=int, default=2)
    parser.add_argument("--tau-max", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        params = PhysicsParams(args.eta, args.lam, 0.0)
        res = charged_state_energy(
            params,
            Lattice.parse(args.lattice),
            seed=args.seed,
            n_chains=args.chains,
            n_therm=args.therm,
            n_blocks=args.blocks,
            sweeps_per_block=args.sweeps,
            tau_min=args.tau_min,
            tau_max=args.tau_max,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'tau':>4} {'C(tau)/C(0)':>14} {'err':>10} {'E_eff':>9} {'err':>8}")
    for tau in range(res.window[1] + 1):
        eff = res.effective[tau] if tau < res.effective.size else math.nan
        err = res.effective_err[tau] if tau < res.effective.size else math.nan
        print(
            f"{tau:>4} {res.correlator[tau]:>14.6g} {res.correlator_err[tau]:>10.2g} "
            f"{eff:>9.4f} {err:>8.4f}"
        )
    lo, hi = res.window
    print(f"E = {res.energy:.4f} +- {res.energy_err:.4f} (tau = {lo} .. {hi - 1}, eta = "
          f"{args.eta:g}, lam = {args.lam:g}, mu = 0, {args.lattice})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
