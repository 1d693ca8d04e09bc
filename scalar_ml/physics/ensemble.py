r"""Ensembles of closed dual configurations with measured thermalisation and decorrelation.

:func:`generate_ensemble` runs ``n_chains`` independent worm chains (:class:`~.worm.WormChains`;
on 3D and 4D lattices :class:`~.worm_nd.WormChainsND`, the same algorithm in d dimensions; seeds
``SeedSequence(seed).spawn(n_chains)``) in parallel over all cores; a chain's trajectory
depends only on its seed, and every decision below depends only on the chains' measurements, so the
same seed gives bit-identical ensembles for any number of threads. Every chain starts from the empty
configuration; the chains go through the stages in lock step. Sweep counts are per chain and, after
the calibration, in regular sweeps (one l proposal per link and a calibrated number of worm
attempts, :mod:`.worm`); τ is :math:`\max(\tau_{\rm int}(n), \tau_{\rm int}(|\phi|^2))` in sweeps,
from the Γ-method over all chains together (:mod:`.autocorr`).

1. **Calibration**: blocks of 10 *proposal-quota* sweeps (each ends at the first closed
   configuration after ``4V`` worm proposals, so it costs about the same however far from
   equilibrium the chain is; a cold start at high density has worms a thousand times shorter than
   at equilibrium) until two consecutive blocks agree on the mean number of worm proposals per
   attempt within 30 % (at most 20 blocks). ``worms_per_sweep`` = ``4V`` / (that mean over the two
   blocks). Nothing measured here is used.
2. **Thermalisation** ``n_therm = None`` (automatic): sweeps, measuring n and |φ|² after each, until
   their number ``T`` is at least :math:`\max(100, 20\,\tau)` with τ from their second half (checked
   at growing checkpoints; at most 40).
3. **Pilot**: the chains go on measuring after every sweep and *record their configurations* every
   ``r`` sweeps (``r`` about an eighth of the expected spacing, doubled whenever the records would
   exceed 256 MiB). At growing checkpoints the series since the end ``T'`` of the discarded part
   (``T' = T`` at first) is analysed; the pilot ends when

   * the Γ-method finds its window and the series is at least :math:`30\,\tau` long per chain;
   * :math:`T' \ge 20\,\tau` (otherwise ``T'`` moves up to :math:`20\,\tau`);
   * it does not drift: the means of its first and second half agree within :math:`3\sigma` for
     both observables (otherwise ``T'`` moves to its middle: that half counts as thermalisation);
   * and it is long enough for a precise τ, :math:`\min(100, 800/C)\,\tau` per chain (as
     precise as 8 chains × 100 τ: the precision comes from all chains together), *or* its records
     already hold the whole ensemble and it is :math:`240\,\tau / C` long.

   Discarding :math:`\ge 20\tau_{\rm int}` sweeps removes the start-up bias far below the
   statistical errors for the exponential relaxation seen here (the drift test checks exactly
   that). The spacing is ``s = ceil(2 (τ + δτ))``, maximised over n and |φ|²: two τ_int, with a
   one-σ margin for the statistical error of the estimate. The pilot samples the equilibrium
   distribution from ``T'`` on, so it is not thrown away: its records after ``T'`` that are
   ``s_p = r·ceil(s / r) >= s`` sweeps apart become the first stored configurations.
4. **Production**: every chain stores a configuration every ``s`` sweeps (the first one ``s``
   sweeps after its last pilot record) until it has its share, and goes on measuring n, |φ|² and
   |φ|⁴ after every sweep (``V`` table look-ups, about 1 % of a sweep).
5. **Measurement**: ``n``, ``|φ|²``, ``|φ|⁴`` of every stored configuration by
   :func:`.observables.measure` (the same code that computes training targets), checked against
   the kernel's own incremental measurement; every stored configuration is checked to have
   ``div k = 0`` and ``l >= 0``.
6. **Estimates** (``meta["estimates"]``): ⟨n⟩, ⟨|φ|²⟩, ⟨|φ|⁴⟩ with Γ-method errors from *every*
   sweep after ``T'`` (pilot and production, all chains), not only from the configurations stored
   ``s ≈ 2 τ`` apart. The sweeps are the same, the information is not: the stored series has
   ``2 τ_stored ≈ 1.3`` at ``s = 2 τ`` (``e^{-2}`` correlation left), so its ``err²·t`` is about
   ``2.6 τ`` sweeps against ``2 τ`` for every sweep, and an observable whose τ is shorter than the
   one that set ``s`` gains more (⟨n⟩ on 8×8: err² six times smaller). This is what
   ``python -m scalar_ml.sample`` reports, and what a measurement rather than a dataset should use.

With an explicit ``n_therm`` the chains run exactly ``n_therm`` sweeps after the calibration (so
they cost what automatic ones cost) and ``T'`` stays there; a warning is given if
``n_therm < 20 τ`` or the pilot drifts. An explicit ``sweeps_between`` is the recording interval
of the pilot and of the production; it is honoured, with a warning if it is shorter than ``2 τ``.
All criteria are counted at checkpoints; if they are not met after 40 of them the ensemble is
produced anyway, with a warning.

Configurations are stored chain by chain: chain ``c`` contributes the next
``meta["chain_lengths"][c]`` configurations (``N // C`` or one more) in Markov-chain order.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from scalar_ml.physics.autocorr import AutocorrResult, autocorrelation
from scalar_ml.physics.observables import measure
from scalar_ml.physics.params import Lattice, PhysicsParams, validate_point
from scalar_ml.physics.weights import WeightTable
from scalar_ml.physics.worm import ChainRun, WormChains
from scalar_ml.physics.worm_nd import worm_chains

# Version of the sampling algorithm (sweep definition, RNG streams, decorrelation rule). It is part
# of every ensemble-cache key: bump it whenever the same seed would give different configurations.
# 2: lifted worm, calibration by proposal-quota sweeps, pilot records reused, pooled pilot length.
SAMPLER_VERSION = 2

__all__ = ["Ensemble", "generate_ensemble"]

_CAL_BLOCK = 10  # proposal-quota sweeps per calibration block
_CAL_MIN_BLOCKS = 2
_CAL_MAX_BLOCKS = 20
_CAL_TOLERANCE = 0.3  # consecutive blocks agree on proposals per attempt within 30 %
_MIN_THERM = 100  # sweeps after calibration before the first pilot
_THERM_TAUS = 20.0
_PILOT_MIN_TAUS = 30.0  # per chain, always
_PILOT_CHAIN_TAUS = 100.0  # per chain: long enough for a precise tau ...
_PILOT_POOLED_TAUS = 800.0  # ... or this long in all chains together (whichever is shorter)
_PILOT_ENOUGH_TAUS = 240.0  # in all chains together, when the records hold the whole ensemble
_PILOT_FIRST = 200  # first pilot length when nothing is known about tau (explicit short n_therm)
_RECORD_SUBDIVISION = 8  # pilot records about every spacing / 8 sweeps
_MAX_RECORD_BYTES = 256 * 2**20
_DRIFT_SIGMAS = 3.0
_MIN_ANALYSED = 20  # sweeps per chain before a series is analysed at all
_MAX_CHECKPOINTS = 40
_MAX_CONFIG_BYTES = 8 * 2**30
_KERNEL_OBSERVABLES = ("n", "phi2", "phi4")  # the columns of the kernels' per-sweep series


@dataclass
class Ensemble:
    """A set of closed configurations and their per-configuration observables.

    Attributes:
        configs: ``(N, 4, Nt, Nx)`` int32, channels ``[k_t, k_x, l_t, l_x]`` (SPEC §1); on a
            d-dimensional lattice ``(N, 2d, *shape)``, ``[k_0 … k_{d-1}, l_0 … l_{d-1}]``.
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

    @property
    def enabled(self) -> bool:
        return self._bar is not None

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


class _Series:
    """The per-sweep ``[n, phi2, phi4]`` of all chains since the end of the calibration."""

    def __init__(self, n_chains: int) -> None:
        self._parts: list[np.ndarray] = [np.zeros((n_chains, 0, 3))]
        self.length = 0

    def add(self, part: np.ndarray) -> None:
        self._parts.append(part)
        self.length += part.shape[1]

    def window(self, start: int, stop: int | None = None) -> np.ndarray:
        """``(C, stop - start, 3)``: sweeps ``start + 1 .. stop`` (sweep ``i`` is index ``i - 1``)."""
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts, axis=1)]
        return self._parts[0][:, start:stop]


class _Records:
    """Pilot configurations recorded after sweeps ``origin + j·stride`` (j >= 1), thinned on demand.

    Sweeps are counted from the end of the calibration, like :class:`_Series`.
    """

    def __init__(self, origin: int, stride: int, max_bytes: int) -> None:
        self.origin, self.stride, self.max_bytes = origin, stride, max_bytes
        self.sweeps = np.zeros(0, dtype=np.int64)
        self._configs: list[np.ndarray] = []
        self._obs: list[np.ndarray] = []

    def first_record(self, length: int) -> int:
        """``record_first`` for a run that starts after sweep ``length`` (next grid point)."""
        return self.stride - (length - self.origin) % self.stride

    def add(self, length: int, first: int, every: int, out: ChainRun) -> None:
        """Records of ``out``, taken after sweeps ``length + first + every·j``."""
        new = length + first + every * np.arange(out.configs.shape[1], dtype=np.int64)
        on_grid = (new - self.origin) % self.stride == 0  # after a thinning during the run
        self.sweeps = np.concatenate([self.sweeps, new[on_grid]])
        self._configs.append(out.configs[:, on_grid])
        self._obs.append(out.observables[:, on_grid])
        while self.nbytes > self.max_bytes and self.sweeps.size > 1:
            self._keep((self.sweeps - self.origin) % (2 * self.stride) == 0)
            self.stride *= 2

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._configs)

    def _keep(self, mask: np.ndarray) -> None:
        configs = np.concatenate(self._configs, axis=1) if self._configs else None
        obs = np.concatenate(self._obs, axis=1) if self._obs else None
        self.sweeps = self.sweeps[mask]
        self._configs = [configs[:, mask]] if configs is not None else []
        self._obs = [obs[:, mask]] if obs is not None else []

    def drop_before(self, sweep: int) -> None:
        """Forget the records before ``sweep`` (they fall into the discarded thermalisation)."""
        if self.sweeps.size and self.sweeps[0] < sweep:
            self._keep(self.sweeps >= sweep)

    def first_after(self, sweep: int) -> int:
        """The first grid sweep ``>= sweep`` (recorded or still to come)."""
        j = max(1, -(-(sweep - self.origin) // self.stride))
        return self.origin + j * self.stride

    def count(self, start: int, spacing: int, limit: int) -> int:
        """How many records ``start, start + spacing, ...`` exist (at most ``limit``)."""
        if not self.sweeps.size or limit <= 0:
            return 0
        return min(limit, max(0, (int(self.sweeps[-1]) - start) // spacing + 1))

    def select(
        self, start: int, spacing: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Records ``start, start + spacing, ...`` (at most ``limit``): configs, observables, sweeps."""
        m = self.count(start, spacing, limit)
        wanted = start + spacing * np.arange(m, dtype=np.int64)
        idx = np.searchsorted(self.sweeps, wanted)
        if m and not np.array_equal(self.sweeps[idx], wanted):
            raise RuntimeError("pilot records are not on the expected grid")  # never: a bug
        configs = np.concatenate(self._configs, axis=1) if self._configs else None
        obs = np.concatenate(self._obs, axis=1) if self._obs else None
        if configs is None:
            raise RuntimeError("no pilot records")  # never: count() was 0
        return configs[:, idx], obs[:, idx], wanted


class _Clock:
    """Wall-clock and process CPU seconds per stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._w0, self._c0 = time.perf_counter(), time.process_time()
        self._w, self._c = self._w0, self._c0

    def lap(self, stage: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.wall[f"{stage}_s"] = w - self._w
        self.cpu[f"{stage}_s"] = c - self._c
        self._w, self._c = w, c

    def finish(self) -> None:
        self.wall["total_s"] = time.perf_counter() - self._w0
        self.cpu["total_s"] = time.process_time() - self._c0


def _run(
    chains: WormChains,
    n_sweeps: int,
    bar: _Progress | None,
    series: _Series | None,
    *,
    record_first: int = 1,
    record_every: int = 0,
    chunk: int | None = None,
    on_records: Callable[[int, int, ChainRun], None] | None = None,
) -> None:
    """Run ``n_sweeps`` sweeps, measuring into ``series`` if given.

    In chunks of ``chunk`` sweeps; by default one kernel call, or twenty when ``bar`` shows a
    progress bar: every call costs a thread-pool start and Python work, which matters on
    small lattices. Records follow the grid ``record_first, record_first + record_every, ...`` of
    this call; for every chunk that recorded something, ``on_records(done, first, out)`` gets the
    sweeps of this call before the chunk, the chunk's own ``record_first`` and its
    :class:`~.worm.ChainRun`.
    """
    if chunk is None:
        shown = bar is not None and bar.enabled
        chunk = max(1, math.ceil(n_sweeps / 20) if shown else n_sweeps)
    done = 0
    while done < n_sweeps:
        m = min(chunk, n_sweeps - done)
        first = record_first - done
        if record_every > 0 and first < 1:
            first += record_every * math.ceil((1 - first) / record_every)
        recording = record_every > 0 and first <= m
        out = chains.run(
            m,
            series=series is not None,
            record_every=record_every if recording else 0,
            record_first=first if recording else 1,
        )
        if series is not None and out.series is not None:
            series.add(out.series)
        if recording and on_records is not None:
            on_records(done, first, out)
        done += m
        if bar is not None:
            bar.update(m)


def _calibrate(chains: WormChains, bar: _Progress) -> tuple[int, int]:
    """Proposal-quota blocks until two agree on proposals per attempt; ``(sweeps, blocks)``."""
    quota = 4 * chains.lattice.volume
    blocks: list[tuple[int, int]] = []  # (attempts, proposals) per block
    while True:
        before = chains.counters()
        chains.run(_CAL_BLOCK, series=False, proposal_quota=quota)
        after = chains.counters()
        bar.update(_CAL_BLOCK)
        blocks.append(
            (
                after["start_proposed"] - before["start_proposed"],
                after["worm_proposals"] - before["worm_proposals"],
            )
        )
        if len(blocks) >= _CAL_MIN_BLOCKS:
            (a1, p1), (a2, p2) = blocks[-2:]
            stable = abs((p2 / a2) / (p1 / a1) - 1.0) <= _CAL_TOLERANCE
            if stable or len(blocks) >= _CAL_MAX_BLOCKS:
                per_attempt = (p1 + p2) / (a1 + a2)
                chains.worms_per_sweep = int(min(max(round(quota / per_attempt), 1), quota))
                return _CAL_BLOCK * len(blocks), len(blocks)
        bar.grow(_CAL_BLOCK)


def _thermalise(
    chains: WormChains, series: _Series, bar: _Progress
) -> tuple[dict[str, AutocorrResult], int, bool]:
    """Sweeps until ``T >= max(100, 20 τ)`` (τ of their second half); ``(stats, checks, ok)``."""
    target = _MIN_THERM
    checks = 0
    while True:
        bar.grow(max(0, target - series.length))
        _run(chains, target - series.length, bar, series)
        checks += 1
        length = series.length
        stats = _tau_stats(series.window(length // 2, length))
        tau = max(s.tau_int for s in stats.values())
        window_ok = all(s.window_ok for s in stats.values())
        if window_ok and length >= _THERM_TAUS * tau:
            return stats, checks, True
        if checks >= _MAX_CHECKPOINTS:
            return stats, checks, False
        wanted = math.ceil(1.05 * _THERM_TAUS * tau) if window_ok else 2 * length
        target = min(max(wanted, math.ceil(1.25 * length)), 4 * length)


def _estimates(series: np.ndarray) -> dict[str, Any]:
    """⟨n⟩, ⟨|φ|²⟩, ⟨|φ|⁴⟩ from every sweep of a ``(C, S, 3)`` equilibrium series (Γ-method)."""
    out: dict[str, Any] = {}
    for i, name in enumerate(_KERNEL_OBSERVABLES):
        if series.shape[1] < 2:
            out[name] = {"mean": float(series[:, :, i].mean()), "err": None, "tau_int": None}
            continue
        stats = autocorrelation(series[:, :, i]).as_dict()
        out[name] = {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in stats.items()}
    out["sweeps_per_chain"] = int(series.shape[1])
    out["unit"] = "sweeps"
    return out


def _spacing(stats: dict[str, AutocorrResult]) -> int:
    """``ceil(2 (τ + δτ))`` maximised over the observables (at least 1)."""
    return max(1, math.ceil(2.0 * max(s.tau_int + s.tau_int_err for s in stats.values())))


@dataclass
class _PilotResult:
    stats: dict[str, AutocorrResult]
    tau: float
    drift: float
    t_discard: int  # T': sweeps (after calibration) counted as thermalisation
    checks: int
    accepted: bool


def _pilot(
    chains: WormChains,
    series: _Series,
    records: _Records,
    bar: _Progress,
    *,
    auto_therm: bool,
    spacing: int | None,
    per_chain: int,
    first_length: int,
) -> _PilotResult:
    """Stage 3 of the module docstring: run and analyse until the pilot criteria hold."""
    n_chains = chains.n_chains
    start = series.length
    t_discard = start
    target = start + first_length
    checks = 0
    stats: dict[str, AutocorrResult] | None = None
    tau = drift = math.nan
    while True:
        if target > series.length:
            length = series.length
            bar.grow(target - length)
            _run(
                chains,
                target - length,
                bar,
                series,
                record_first=records.first_record(length),
                record_every=records.stride,
                on_records=functools.partial(_add_records, records, length, records.stride),
            )
        checks += 1
        length = series.length
        for _ in range(4):  # auto: T' >= 20 tau, tau measured after T'
            if length - t_discard < _MIN_ANALYSED:
                break
            stats = _tau_stats(series.window(t_discard, length))
            tau = max(s.tau_int for s in stats.values())
            if not auto_therm or t_discard >= _THERM_TAUS * tau:
                break
            t_discard = math.ceil(_THERM_TAUS * tau)
        records.drop_before(t_discard)
        kept = length - t_discard
        if stats is None or kept < _MIN_ANALYSED or (auto_therm and t_discard < _THERM_TAUS * tau):
            # nothing (left) to analyse after T': run on
            if checks >= _MAX_CHECKPOINTS and stats is not None:
                return _PilotResult(stats, tau, drift, t_discard, checks, False)
            target = max(target, t_discard + first_length)
            continue
        drift = _drift_sigmas(series.window(t_discard, length))
        s = spacing if spacing is not None else _spacing(stats)
        s_pilot = records.stride * math.ceil(s / records.stride)
        first_rec = records.first_after(t_discard)
        available = records.count(first_rec, s_pilot, per_chain)
        reliable = all(st.window_ok for st in stats.values()) and kept >= _PILOT_MIN_TAUS * tau
        precise_len = min(_PILOT_CHAIN_TAUS, _PILOT_POOLED_TAUS / n_chains) * tau
        enough_len = _PILOT_ENOUGH_TAUS / n_chains * tau
        precise = kept >= precise_len
        enough = available >= per_chain and kept >= enough_len
        therm_ok = not auto_therm or drift <= _DRIFT_SIGMAS
        if reliable and therm_ok and (precise or enough):
            return _PilotResult(stats, tau, drift, t_discard, checks, True)
        if checks >= _MAX_CHECKPOINTS:
            return _PilotResult(stats, tau, drift, t_discard, checks, False)
        if auto_therm and drift > _DRIFT_SIGMAS:
            t_discard += kept // 2  # the first half was not in equilibrium
            records.drop_before(t_discard)
        data_len = records.first_after(t_discard) - t_discard + (per_chain - 1) * s_pilot
        needed = max(_PILOT_MIN_TAUS * tau, min(precise_len, max(enough_len, data_len)))
        wanted = t_discard + math.ceil(1.02 * needed) + 1
        done = length - start
        target = min(max(wanted, length + max(10, done // 5)), length + max(50, done))


def _add_records(
    records: _Records, length: int, every: int, done: int, first: int, out: ChainRun
) -> None:
    records.add(length + done, first, every, out)


def _stored(
    parts: list[tuple[np.ndarray, np.ndarray]], per_chain: int
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``(configs (C, m, ...), obs (C, m, 3))`` parts and keep ``per_chain`` per chain."""
    configs = np.concatenate([p[0] for p in parts], axis=1)[:, :per_chain]
    obs = np.concatenate([p[1] for p in parts], axis=1)[:, :per_chain]
    return configs, obs


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
        lattice: ``Nt × Nx`` (or d-dimensional, d = 3, 4); validated first.
        n_configs: number of stored configurations (>= 1).
        seed: non-negative integer; the same seed gives bit-identical arrays for any thread count.
        n_chains: independent Markov chains (>= 1), run in parallel over the available threads.
        n_therm: thermalisation sweeps per chain after the calibration (>= 0); ``None``: automatic
            (module docstring).
        sweeps_between: sweeps between stored configurations (>= 1); ``None``:
            ``ceil(2 (τ_int + δτ_int))`` (module docstring).
        progress: show tqdm progress bars (only on a terminal).

    Returns:
        An :class:`Ensemble`; ``meta`` records the parameters, the measured ``tau_int`` (pilot, in
        sweeps) and ``tau_int_stored`` (in stored configurations), the ``estimates`` of n, phi2
        and phi4 from every sweep after the thermalisation (stage 6: ``{name: {"mean", "err",
        "tau_int", ...}, "sweeps_per_chain", "unit": "sweeps"}``), acceptance rates, timings
        (wall and CPU seconds per stage) and throughput.

    Raises:
        ValueError: on any invalid argument, before any sampling.

    >>> ens = generate_ensemble(PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4), 16, seed=1, n_chains=2)
    >>> ens.configs.shape, ens.configs.dtype.name, ens.meta["chain_lengths"]
    ((16, 4, 4, 4), 'int32', [8, 8])
    >>> ens.meta["sweeps_between"] >= 2 * max(ens.meta["tau_int"]["n"], ens.meta["tau_int"]["phi2"])
    True
    """
    clock = _Clock()
    validate_point(params, lattice)
    _check_int("n_configs", n_configs, 1)
    _check_int("seed", seed, 0)
    _check_int("n_chains", n_chains, 1)
    _check_int("n_therm", n_therm, 0, optional=True)
    _check_int("sweeps_between", sweeps_between, 1, optional=True)
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be a bool, got {progress!r}")
    n_configs, seed, n_chains = int(n_configs), int(seed), int(n_chains)
    config_bytes = n_configs * 2 * lattice.dims * lattice.volume * 4
    if config_bytes > _MAX_CONFIG_BYTES:
        raise ValueError(
            f"n_configs = {n_configs} on {lattice} needs {config_bytes / 2**30:.1f} GiB of "
            f"configurations (limit {_MAX_CONFIG_BYTES / 2**30:.0f} GiB)"
        )

    table = WeightTable(params.eta, params.lam)
    chains = worm_chains(params, lattice, np.random.SeedSequence(seed), n_chains, table=table)
    lengths = [
        n_configs // n_chains + (1 if c < n_configs % n_chains else 0) for c in range(n_chains)
    ]
    per_chain = max(lengths)
    warn_msgs: list[str] = []
    clock.lap("setup")

    # ---- 1: calibration ----------------------------------------------------------------------
    therm_bar = _Progress(progress, _CAL_BLOCK * _CAL_MIN_BLOCKS, "thermalise", "sweep")
    cal_sweeps, cal_blocks = _calibrate(chains, therm_bar)
    clock.lap("calibration")

    # ---- 2: thermalisation -------------------------------------------------------------------
    series = _Series(n_chains)
    if n_therm is None:
        therm_stats, therm_checks, therm_ok = _thermalise(chains, series, therm_bar)
    else:
        therm_bar.grow(n_therm)
        _run(chains, n_therm, therm_bar, series)
        therm_checks, therm_ok = 0, True
        therm_stats = None
        if n_therm >= 40:
            therm_stats = _tau_stats(series.window(n_therm // 2, n_therm))
    clock.lap("therm")

    # ---- 3: pilot (its records after the discarded part are kept) -----------------------------
    if sweeps_between is not None:
        stride = int(sweeps_between)
    elif therm_stats is not None:
        stride = max(1, _spacing(therm_stats) // _RECORD_SUBDIVISION)
    else:
        stride = 1
    if therm_stats is not None:
        tau_guess = max(s.tau_int for s in therm_stats.values())
        first_length = max(math.ceil(_PILOT_MIN_TAUS * tau_guess), 50)
    else:
        first_length = _PILOT_FIRST
    records = _Records(series.length, stride, _MAX_RECORD_BYTES)
    pilot = _pilot(
        chains,
        series,
        records,
        therm_bar,
        auto_therm=n_therm is None,
        spacing=sweeps_between,
        per_chain=per_chain,
        first_length=first_length,
    )
    therm_bar.close()
    stats, tau, drift = pilot.stats, pilot.tau, pilot.drift
    if n_therm is None and not (therm_ok and pilot.accepted):
        warn_msgs.append(
            f"thermalisation criteria not met after {therm_checks + pilot.checks} checkpoints "
            f"(tau_int = {tau:.1f} sweeps, drift {drift:.1f} sigma); continuing"
        )
    if n_therm is not None:
        if n_therm < _THERM_TAUS * tau:
            warn_msgs.append(
                f"n_therm = {n_therm} is shorter than {_THERM_TAUS:.0f} tau_int = "
                f"{_THERM_TAUS * tau:.0f} sweeps"
            )
        if drift > _DRIFT_SIGMAS:
            warn_msgs.append(f"the pilot run drifts by {drift:.1f} sigma: not thermalised?")
    if sweeps_between is None:
        spacing = _spacing(stats)
    else:
        spacing = int(sweeps_between)
        if spacing < 2.0 * tau:
            warn_msgs.append(
                f"sweeps_between = {spacing} is shorter than 2 tau_int = {2.0 * tau:.1f} sweeps "
                f"(measured): stored configurations are correlated"
            )
    for msg in warn_msgs:
        warnings.warn(msg, stacklevel=2)
    pilot_spacing = records.stride * math.ceil(spacing / records.stride)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    first_rec = records.first_after(pilot.t_discard)
    from_pilot = records.count(first_rec, pilot_spacing, per_chain)
    last = None
    if from_pilot:
        cfg, obs, sweeps = records.select(first_rec, pilot_spacing, per_chain)
        parts.append((cfg, obs))
        last = int(sweeps[-1])
    pilot_sweeps = series.length - pilot.t_discard
    pilot_stride = records.stride
    del records
    clock.lap("pilot")

    # ---- 4: production -----------------------------------------------------------------------
    remaining = per_chain - from_pilot
    prod_bar = _Progress(progress, n_configs, "sample", "config")
    prod_bar.update(sum(min(n, from_pilot) for n in lengths))
    if remaining > 0:
        first = 1 if last is None else max(1, last + spacing - series.length)

        def keep(done: int, first: int, out: ChainRun) -> None:
            before = sum(p[0].shape[1] for p in parts)
            parts.append((out.configs, out.observables))
            now = before + out.configs.shape[1]
            prod_bar.update(sum(min(n, now) - min(n, before) for n in lengths))

        _run(
            chains,
            first + (remaining - 1) * spacing,
            None,
            series,
            record_first=first,
            record_every=spacing,
            chunk=spacing * max(1, math.ceil(remaining / 50)) if progress else None,
            on_records=keep,
        )
    prod_bar.close()
    stored, kernel_obs = _stored(parts, per_chain)
    estimates = _estimates(series.window(pilot.t_discard))
    clock.lap("production")

    # ---- 5: measurement and checks -------------------------------------------------------------
    configs = np.concatenate([stored[c, : lengths[c]] for c in range(n_chains)])
    k_obs = np.concatenate([kernel_obs[c, : lengths[c]] for c in range(n_chains)])
    obs = measure(configs, table, check_closed=True, dims=lattice.dims)
    for i, name in enumerate(_KERNEL_OBSERVABLES):
        if not np.allclose(obs[name], k_obs[:, i], rtol=1e-11, atol=1e-13):
            raise RuntimeError(f"kernel measurement of {name} disagrees with the recomputation")

    stored_tau: dict[str, float | None] = {}
    chain_series = np.split(np.arange(n_configs), np.cumsum(lengths)[:-1])
    for name in ("n", "phi2"):
        parts_obs = [obs[name][idx] for idx in chain_series if idx.size >= 2]
        stored_tau[name] = autocorrelation(parts_obs).tau_int if parts_obs else None
    clock.lap("measure")
    clock.finish()

    import scalar_ml

    counts = chains.counters()
    t_total = clock.wall["total_s"]
    t_sampler = sum(clock.wall[f"{k}_s"] for k in ("calibration", "therm", "pilot", "production"))
    meta: dict[str, Any] = {
        "params": params.as_dict(),
        "lattice": lattice.as_dict(),
        "n_configs": n_configs,
        "seed": seed,
        "n_chains": n_chains,
        "chain_lengths": lengths,
        "calibration_sweeps": int(cal_sweeps),
        "calibration_blocks": int(cal_blocks),
        "n_therm": int(pilot.t_discard),
        "n_therm_auto": n_therm is None,
        "checkpoints": {"therm": int(therm_checks), "pilot": int(pilot.checks)},
        "pilot_sweeps": int(pilot_sweeps),
        "pilot_drift_sigma": _finite_or_none(drift),
        "pilot_record_every": int(pilot_stride),
        "configs_from_pilot": int(sum(min(n, from_pilot) for n in lengths)),
        "sweeps_between": int(spacing),
        "sweeps_between_pilot": int(pilot_spacing),
        "sweeps_between_auto": sweeps_between is None,
        "worms_per_sweep": int(chains.worms_per_sweep),
        "sweep": (
            "one l proposal per link (2V) + worms_per_sweep lifted-worm attempts, each run until "
            "closed (about 4V worm proposals)"
        ),
        "tau_int": {
            "n": stats["n"].tau_int,
            "phi2": stats["phi2"].tau_int,
            "n_err": stats["n"].tau_int_err,
            "phi2_err": stats["phi2"].tau_int_err,
            "unit": "sweeps",
        },
        "tau_int_stored": {**stored_tau, "unit": "configs"},
        "estimates": estimates,
        "acceptance": {k: _finite_or_none(v) for k, v in chains.acceptance().items()},
        "sweeps_per_chain": int(chains.sweeps_done),
        "worm_proposals": counts["worm_proposals"],
        "l_proposals": counts["l_proposed"],
        "worms_completed": counts["worms_completed"],
        "timings": dict(clock.wall),
        "cpu_timings": dict(clock.cpu),
        "proposals_per_s": counts["worm_proposals"] / t_sampler if t_sampler > 0 else None,
        "sweeps_per_s": n_chains * chains.sweeps_done / t_sampler if t_sampler > 0 else None,
        "configs_per_s": n_configs / t_total if t_total > 0 else None,
        "num_threads": int(numba.get_num_threads()),
        "f_max": int(table.f_max),
        "version": scalar_ml.__version__,
    }
    return Ensemble(configs=configs, n=obs["n"], phi2=obs["phi2"], phi4=obs["phi4"], meta=meta)
