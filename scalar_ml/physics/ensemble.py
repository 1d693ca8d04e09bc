r"""Ensembles of closed dual configurations with measured thermalisation and decorrelation.

:func:`generate_ensemble` runs ``n_chains`` independent worm chains (:class:`~.worm.WormChains`,
seeds ``SeedSequence(seed).spawn(n_chains)``) in parallel over all cores; a chain's trajectory
depends only on its seed, so the same seed gives bit-identical ensembles for any number of threads.
Every chain starts from the empty configuration and goes through four stages:

1. **Calibration** (part of the thermalisation): 30 sweeps with a provisional number of worms per
   sweep, then 20 sweeps that fix ``worms_per_sweep`` (about ``4V`` worm proposals per sweep).
2. **Thermalisation** ``n_therm = None`` (automatic): 100 further sweeps, then rounds of a *pilot*
   run of ``P`` sweeps (200 at first) that measures :math:`\tau_{\rm int}` of ``n`` and ``|φ|²``
   (Γ-method over all chains, :mod:`.autocorr`), with :math:`\tau = \max(\tau_n, \tau_{\phi^2})`.
   A round is accepted when

   * the thermalisation so far (after calibration) is at least :math:`20\,\tau` sweeps,
   * the pilot is at least :math:`100\,\tau` sweeps long per chain (then the relative error of
     τ is about 15 %), and
   * the pilot shows no drift: the means of its first and second half agree within
     :math:`3\sigma` for both observables (autocorrelation-aware errors);

   otherwise the pilot counts as thermalisation, ``P`` grows to ``max(P, 100τ)`` and a new pilot
   runs (at most 10 rounds, then a warning). Discarding :math:`\ge 20\tau_{\rm int}` sweeps removes
   the start-up bias far below the statistical errors for the exponential relaxation seen here
   (the drift test checks exactly that); with an explicit ``n_therm`` the pilot still measures τ
   and a warning is given if ``n_therm < 20τ`` or the pilot drifts.
3. **Production**: every chain stores a configuration every ``sweeps_between`` sweeps;
   ``sweeps_between = None`` means :math:`\lceil 2(\tau_{\rm int} + \delta\tau_{\rm int})\rceil`,
   maximised over ``n`` and ``|φ|²`` (at least 1): two τ_int, with a one-σ margin for the
   statistical error of the pilot's estimate. An explicit ``sweeps_between < 2τ`` is honoured
   with a warning.
4. **Measurement**: ``n``, ``|φ|²``, ``|φ|⁴`` of every stored configuration by
   :func:`.observables.measure` (the same code that computes training targets), checked against
   the kernel's own incremental measurement; every stored configuration is checked to have
   ``div k = 0`` and ``l >= 0``.

Configurations are stored chain by chain: chain ``c`` contributes the next
``meta["chain_lengths"][c]`` configurations (``N // C`` or one more) in Markov-chain order.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from scalar_ml.physics.autocorr import AutocorrResult, autocorrelation
from scalar_ml.physics.observables import measure
from scalar_ml.physics.params import Lattice, PhysicsParams, validate_point
from scalar_ml.physics.weights import WeightTable
from scalar_ml.physics.worm import WormChains

# Version of the sampling algorithm (sweep definition, RNG streams, decorrelation rule). It is part
# of every ensemble-cache key: bump it whenever the same seed would give different configurations.
SAMPLER_VERSION = 2

__all__ = ["Ensemble", "generate_ensemble"]

_PROVISIONAL_SWEEPS = 30
_CALIBRATION_SWEEPS = 20
_MIN_THERM = 100  # sweeps after calibration before the first pilot
_FIRST_PILOT = 200
_THERM_TAUS = 20.0
_PILOT_TAUS = 100.0
_DRIFT_SIGMAS = 3.0
_MAX_ROUNDS = 10
_MAX_CONFIG_BYTES = 8 * 2**30


@dataclass
class Ensemble:
    """A set of closed configurations and their per-configuration observables.

    Attributes:
        configs: ``(N, 4, Nt, Nx)`` int32, channels ``[k_t, k_x, l_t, l_x]`` (SPEC §1).
        n: ``(N,)`` float64 charge density ``(1/V) Σ_x k_{x,t}``.
        phi2: ``(N,)`` float64 ``(1/V) Σ_x W(f_x+2)/W(f_x)``.
        phi4: ``(N,)`` float64 ``(1/V) Σ_x W(f_x+4)/W(f_x)``.
        meta: JSON-serialisable metadata (parameters, seed, tau_int, acceptance, timings, version).
    """

    configs: np.ndarray
    n: np.ndarray
    phi2: np.ndarray
    phi4: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.configs.shape[0])


def _check_int(name: str, value: object, minimum: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{none}, got {value!r}")


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _tau_stats(series: np.ndarray) -> dict[str, AutocorrResult]:
    """Γ-method over the chains of a ``(C, S, 3)`` series for n and phi2."""
    return {name: autocorrelation(series[:, :, i]) for i, name in ((0, "n"), (1, "phi2"))}


def _drift_sigmas(series: np.ndarray) -> float:
    """Largest |mean(1st half) - mean(2nd half)| / σ over n and phi2 (0 where both halves are flat)."""
    half = series.shape[1] // 2
    worst = 0.0
    for i in (0, 1):
        a = autocorrelation(series[:, :half, i])
        b = autocorrelation(series[:, half : 2 * half, i])
        sigma = math.hypot(a.err, b.err)
        diff = abs(a.mean - b.mean)
        if sigma > 0:
            worst = max(worst, diff / sigma)
        elif diff > 0:
            worst = math.inf
    return worst


class _Progress:
    """A tqdm bar when asked for (silent when not a terminal), else nothing."""

    def __init__(self, enabled: bool, total: int, desc: str, unit: str) -> None:
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def grow(self, extra: int) -> None:
        if self._bar is not None:
            self._bar.total += extra
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _run_sweeps(chains: WormChains, n_sweeps: int, bar: _Progress) -> np.ndarray:
    """Run ``n_sweeps`` sweeps in progress-sized chunks; return the ``(C, n_sweeps, 3)`` series."""
    chunk = max(1, math.ceil(n_sweeps / 20))
    parts = []
    done = 0
    while done < n_sweeps:
        m = min(chunk, n_sweeps - done)
        parts.append(chains.run(m).series)
        done += m
        bar.update(m)
    return np.concatenate(parts, axis=1) if parts else np.zeros((chains.n_chains, 0, 3))


def generate_ensemble(
    params: PhysicsParams,
    lattice: Lattice,
    n_configs: int,
    seed: int,
    *,
    n_chains: int = 8,
    n_therm: int | None = None,
    sweeps_between: int | None = None,
    progress: bool = False,
) -> Ensemble:
    """Sample ``n_configs`` decorrelated closed configurations at ``params`` on ``lattice``.

    Args:
        params: couplings ``(eta, lam, mu)``; validated first.
        lattice: ``Nt × Nx``; validated first.
        n_configs: number of stored configurations (>= 1).
        seed: non-negative integer; the same seed gives bit-identical arrays for any thread count.
        n_chains: independent Markov chains (>= 1), run in parallel over the available threads.
        n_therm: thermalisation sweeps per chain (>= 0, calibration included); ``None``: automatic
            (module docstring).
        sweeps_between: sweeps between stored configurations (>= 1); ``None``:
            ``ceil(2 (τ_int + δτ_int))`` (module docstring).
        progress: show tqdm progress bars (only on a terminal).

    Returns:
        An :class:`Ensemble`; ``meta`` records the parameters, the measured ``tau_int`` (pilot, in
        sweeps) and ``tau_int_stored`` (in stored configurations), acceptance rates, timings and
        throughput.

    Raises:
        ValueError: on any invalid argument, before any sampling.

    >>> ens = generate_ensemble(PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4), 16, seed=1, n_chains=2)
    >>> ens.configs.shape, ens.configs.dtype.name, ens.meta["chain_lengths"]
    ((16, 4, 4, 4), 'int32', [8, 8])
    >>> ens.meta["sweeps_between"] >= 2 * max(ens.meta["tau_int"]["n"], ens.meta["tau_int"]["phi2"])
    True
    """
    t_start = time.perf_counter()
    validate_point(params, lattice)
    _check_int("n_configs", n_configs, 1)
    _check_int("seed", seed, 0)
    _check_int("n_chains", n_chains, 1)
    _check_int("n_therm", n_therm, 0, optional=True)
    _check_int("sweeps_between", sweeps_between, 1, optional=True)
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be a bool, got {progress!r}")
    n_configs, seed, n_chains = int(n_configs), int(seed), int(n_chains)
    config_bytes = n_configs * 4 * lattice.volume * 4
    if config_bytes > _MAX_CONFIG_BYTES:
        raise ValueError(
            f"n_configs = {n_configs} on {lattice} needs {config_bytes / 2**30:.1f} GiB of "
            f"configurations (limit {_MAX_CONFIG_BYTES / 2**30:.0f} GiB)"
        )

    table = WeightTable(params.eta, params.lam)
    chains = WormChains(params, lattice, np.random.SeedSequence(seed), n_chains, table=table)
    warn_msgs: list[str] = []

    # ---- 1 + 2: calibration and thermalisation ----------------------------------------------
    t0 = time.perf_counter()
    first_stage = (
        n_therm if n_therm is not None else _PROVISIONAL_SWEEPS + _CALIBRATION_SWEEPS + _MIN_THERM
    )
    therm_bar = _Progress(progress, first_stage + _FIRST_PILOT, "thermalise", "sweep")
    if n_therm is None:
        _run_sweeps(chains, _PROVISIONAL_SWEEPS, therm_bar)
        chains.calibrate(_CALIBRATION_SWEEPS)
        therm_bar.update(_CALIBRATION_SWEEPS)
        therm_after_cal = _MIN_THERM
        _run_sweeps(chains, _MIN_THERM, therm_bar)
    else:
        n_cal = min(_CALIBRATION_SWEEPS, n_therm)
        _run_sweeps(chains, n_therm - n_cal, therm_bar)
        if n_cal > 0:
            chains.calibrate(n_cal)
            therm_bar.update(n_cal)
        therm_after_cal = 0
    t_therm = time.perf_counter() - t0

    t0 = time.perf_counter()
    pilot = _FIRST_PILOT
    rounds = 0
    therm_ok = False
    series = np.zeros((n_chains, 0, 3))
    while True:
        rounds += 1
        if n_therm is None:
            series = _run_sweeps(chains, pilot, therm_bar)
        else:  # explicit n_therm: extend the one pilot run until it is long enough
            series = np.concatenate(
                [series, _run_sweeps(chains, pilot - series.shape[1], therm_bar)], axis=1
            )
        stats = _tau_stats(series)
        tau = max(stats["n"].tau_int, stats["phi2"].tau_int)
        drift = _drift_sigmas(series)
        long_enough = pilot >= _PILOT_TAUS * tau and all(s.window_ok for s in stats.values())
        if n_therm is not None:
            therm_ok = long_enough or rounds >= _MAX_ROUNDS
            if therm_ok:
                if n_therm < _THERM_TAUS * tau:
                    warn_msgs.append(
                        f"n_therm = {n_therm} is shorter than {_THERM_TAUS:.0f} tau_int = "
                        f"{_THERM_TAUS * tau:.0f} sweeps"
                    )
                if drift > _DRIFT_SIGMAS:
                    warn_msgs.append(f"the pilot run drifts by {drift:.1f} sigma: not thermalised?")
                break
            extended = max(2 * pilot, math.ceil(_PILOT_TAUS * tau))
            therm_bar.grow(extended - pilot)
            pilot = extended
            continue
        therm_ok = long_enough and therm_after_cal >= _THERM_TAUS * tau and drift <= _DRIFT_SIGMAS
        if therm_ok or rounds >= _MAX_ROUNDS:
            break
        therm_after_cal += pilot  # this pilot becomes thermalisation
        pilot = max(pilot, math.ceil(_PILOT_TAUS * tau))
        therm_bar.grow(pilot)
    therm_bar.close()
    if n_therm is None and not therm_ok:
        warn_msgs.append(
            f"thermalisation criteria not met after {rounds} rounds "
            f"(tau_int = {tau:.1f} sweeps, drift {drift:.1f} sigma); continuing"
        )
    t_pilot = time.perf_counter() - t0
    n_therm_done = chains.sweeps_done - pilot  # every sweep before the accepted pilot

    tau_upper = max(s.tau_int + s.tau_int_err for s in stats.values())
    needed = max(1, math.ceil(2.0 * tau_upper))
    if sweeps_between is None:
        spacing = needed
    else:
        spacing = int(sweeps_between)
        if spacing < 2.0 * tau:
            warn_msgs.append(
                f"sweeps_between = {spacing} is shorter than 2 tau_int = {2.0 * tau:.1f} sweeps "
                f"(measured): stored configurations are correlated"
            )
    for msg in warn_msgs:
        warnings.warn(msg, stacklevel=2)

    # ---- 3: production -----------------------------------------------------------------------
    t0 = time.perf_counter()
    lengths = [
        n_configs // n_chains + (1 if c < n_configs % n_chains else 0) for c in range(n_chains)
    ]
    per_chain = max(lengths)
    shape = lattice.shape
    stored = np.empty((n_chains, per_chain, 4, *shape), dtype=np.int32)
    kernel_obs = np.empty((n_chains, per_chain, 3))
    prod_bar = _Progress(progress, n_configs, "sample", "config")
    chunk = max(1, math.ceil(per_chain / 50))
    done = 0
    while done < per_chain:
        m = min(chunk, per_chain - done)
        out = chains.run(m * spacing, record_every=spacing, series=False)
        stored[:, done : done + m] = out.configs
        kernel_obs[:, done : done + m] = out.observables
        done += m
        prod_bar.update(sum(min(n, done) - min(n, done - m) for n in lengths))
    prod_bar.close()
    t_prod = time.perf_counter() - t0

    # ---- 4: measurement and checks -------------------------------------------------------------
    t0 = time.perf_counter()
    configs = np.concatenate([stored[c, : lengths[c]] for c in range(n_chains)])
    k_obs = np.concatenate([kernel_obs[c, : lengths[c]] for c in range(n_chains)])
    obs = measure(configs, table, check_closed=True)
    for i, name in enumerate(("n", "phi2", "phi4")):
        if not np.allclose(obs[name], k_obs[:, i], rtol=1e-11, atol=1e-13):
            raise RuntimeError(f"kernel measurement of {name} disagrees with the recomputation")
    t_measure = time.perf_counter() - t0

    stored_tau: dict[str, float | None] = {}
    chain_series = np.split(np.arange(n_configs), np.cumsum(lengths)[:-1])
    for name in ("n", "phi2"):
        parts = [obs[name][idx] for idx in chain_series if idx.size >= 2]
        stored_tau[name] = autocorrelation(parts).tau_int if parts else None

    import scalar_ml

    counts = chains.counters()
    t_total = time.perf_counter() - t_start
    t_sampler = t_therm + t_pilot + t_prod
    meta: dict[str, Any] = {
        "params": params.as_dict(),
        "lattice": {"nt": lattice.nt, "nx": lattice.nx},
        "n_configs": n_configs,
        "seed": seed,
        "n_chains": n_chains,
        "chain_lengths": lengths,
        "n_therm": int(n_therm_done),
        "n_therm_auto": n_therm is None,
        "therm_rounds": rounds,
        "pilot_sweeps": int(pilot),
        "pilot_drift_sigma": _finite_or_none(drift),
        "sweeps_between": int(spacing),
        "sweeps_between_auto": sweeps_between is None,
        "worms_per_sweep": int(chains.worms_per_sweep),
        "sweep": (
            "one l proposal per link (2V) + worms_per_sweep worm attempts, each run until closed"
        ),
        "tau_int": {
            "n": stats["n"].tau_int,
            "phi2": stats["phi2"].tau_int,
            "n_err": stats["n"].tau_int_err,
            "phi2_err": stats["phi2"].tau_int_err,
            "unit": "sweeps",
        },
        "tau_int_stored": {**stored_tau, "unit": "configs"},
        "acceptance": {k: _finite_or_none(v) for k, v in chains.acceptance().items()},
        "sweeps_per_chain": int(chains.sweeps_done),
        "worm_proposals": counts["worm_proposals"],
        "l_proposals": counts["l_proposed"],
        "worms_completed": counts["worms_completed"],
        "timings": {
            "therm_s": t_therm,
            "pilot_s": t_pilot,
            "production_s": t_prod,
            "measure_s": t_measure,
            "total_s": t_total,
        },
        "proposals_per_s": counts["worm_proposals"] / t_sampler if t_sampler > 0 else None,
        "sweeps_per_s": n_chains * chains.sweeps_done / t_sampler if t_sampler > 0 else None,
        "configs_per_s": n_configs / t_total if t_total > 0 else None,
        "num_threads": int(numba.get_num_threads()),
        "f_max": int(table.f_max),
        "version": scalar_ml.__version__,
    }
    return Ensemble(configs=configs, n=obs["n"], phi2=obs["phi2"], phi4=obs["phi4"], meta=meta)
