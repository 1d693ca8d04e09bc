r"""Worm update of the fluxes ``k`` and Metropolis update of ``l`` (numba), SPEC §4.

Target distribution (SPEC §2), on closed configurations (:math:`\operatorname{div} k = 0`):

.. math::

    P[k, l] \propto \prod_{x,\nu} \frac{e^{\mu\,\delta_{\nu,t} k_{x,\nu}}}
        {(|k_{x,\nu}| + l_{x,\nu})!\; l_{x,\nu}!} \; \prod_x W(f_x).

**Worm (extended ensemble).** Open states carry a head ``h``, a tail ``t`` and a sign
:math:`\Delta = \pm1`, with :math:`\operatorname{div}_x k = \Delta(\delta_{x,t} - \delta_{x,h})`,
and weight *link product* × :math:`\prod_x W(f_x + c_x)` × ``A/V``, where :math:`c_x = 1` at the
head and at the tail when ``h != t`` and :math:`c_h = 2` for the zero-length worm ``h = t``. The
moves, each a Metropolis step whose ratio includes the proposal probabilities:

* *start* (closed → ``h = t = x0``): pick ``x0`` uniformly and :math:`\Delta = \pm1`; accept with
  :math:`\min(1, A\,W(f+2)/W(f))` at ``x0``;
* at ``h = t``, with probability ½ propose *stop*: accept with :math:`\min(1, W(f)/(A\,W(f+2)))`;
  otherwise propose a step, whose ratio gets a factor 2 (its reverse move has no ½);
* *step*: pick a direction ν and an orientation s = ±1 uniformly; y = h + sν̂. For s = +1 the link
  (h, ν) changes by +Δ, for s = −1 the link (y, ν) changes by −Δ (so div k stays
  Δ(δ_t − δ_h) with the head moved to y). Ratio: :math:`e^{\mu s\Delta\delta_{\nu,t}}` ×
  :math:`1/(|k'|+l)` if :math:`|k'| > |k|`, else :math:`(|k|+l)` × the site weights. The argument
  :math:`f_x + c_x` changes only at one site: it grows by 2 at ``y`` when :math:`|k|` grows
  (ratio :math:`W(a_y+2)/W(a_y)`) and falls by 2 at ``h`` when :math:`|k|` shrinks
  (ratio :math:`W(a_h-2)/W(a_h)`); entering ``h = t`` from ``h != t`` multiplies by ½.

**l update.** On link (x, y = x+ν̂) propose :math:`\Delta l = \pm1` with probability ½ each; ratio
:math:`W(f_x+2\Delta l)W(f_y+2\Delta l)/(W(f_x)W(f_y))` × :math:`1/((|k|+l+1)(l+1))` for
+1 and :math:`(|k|+l)\,l` for −1 (rejected at l = 0).

**One sweep** is: one l proposal on each of the ``2V`` links, in a fixed order (site-major,
ν = t then x), followed by ``worms_per_sweep`` *worm attempts*; an attempt is a start proposal
and, if it is accepted, every further worm proposal until the worm closes. The worm proposals
(start, step and stop, accepted or not) are counted; :meth:`WormChains.calibrate` sets
``worms_per_sweep`` so that a sweep has about ``4V`` worm proposals on average. Measurements are
taken only on closed configurations, at the end of sweeps.

The number of worm *attempts* per sweep must be fixed: the closed configurations seen after each
attempt form the chain watched on the closed sector, which is stationary with the target P[k, l];
ending a sweep instead at the first closed configuration after a fixed number of *proposals* picks
a state-dependent (length-biased) time and biases every measurement: with "worms until 2V
proposals" the 4×4 free field at η = 4.5, μ = 0 gave ⟨|φ|²⟩ = 0.3742(11) against the exact
0.3542, while fixed attempts give 0.3534(9) (the exact free-field tests in
``tests/physics/test_sampler_exact.py`` fail for the proposal-count rule).

**Implementation.** All ratios are products of precomputed float64 tables
(:math:`W(a\pm2)/W(a)`, :math:`e^{\pm\mu}`), so the hot loop has no ``exp``/``log`` and no
allocation. Every chain has its own xoshiro256++ generator (64-bit draws; the low bits choose the
move, the top 53 bits give the uniform number), so a chain's trajectory depends only on its seed,
never on threads. The kernels never read beyond the weight table: the invariant is
:math:`f_x + c_x \le f_{\max} - 4` everywhere; a proposal that would break it rewinds the
generator to before the proposal and returns :data:`NEED_GROW`, Python grows the table and resumes,
so the trajectory does not depend on when the table grew. With ``debug=True`` the state is
recomputed from scratch after every proposal (``f``, div k, l ≥ 0) and a mismatch stops the run.

>>> from scalar_ml.physics.params import Lattice, PhysicsParams
>>> chains = WormChains(PhysicsParams(4.01, 1.0, 1.0), Lattice(4, 4), seed=1, n_chains=2, debug=True)
>>> out = chains.run(20)
>>> out.series.shape                                 # (chains, sweeps, [n, phi2, phi4])
(2, 20, 3)
>>> chains.check_state()                              # f and div k recomputed from scratch
>>> chains.counters()["start_proposed"] == 20 * 2 * chains.worms_per_sweep
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from scalar_ml.physics.observables import flux_divergence, site_f
from scalar_ml.physics.params import Lattice, PhysicsParams, validate_point
from scalar_ml.physics.weights import WeightTable

__all__ = [
    "DEBUG_FAILED",
    "NEED_GROW",
    "OK",
    "ChainRun",
    "WormChains",
    "xoshiro_next",
]

# kernel return codes
OK = 0
NEED_GROW = 1
DEBUG_FAILED = 2

# fields of the per-chain state vector
_ST_HEAD, _ST_TAIL, _ST_DELTA, _ST_IN_WORM = 0, 1, 2, 3
_ST_PHASE, _ST_LINK, _ST_WATT, _ST_SWEEPS = 4, 5, 6, 7
_N_STATE = 8
# fields of the per-chain counters
_COUNTER_NAMES = (
    "start_proposed",
    "start_accepted",
    "step_proposed",
    "step_accepted",
    "stop_proposed",
    "stop_accepted",
    "l_proposed",
    "l_accepted",
    "worms_completed",
)
_C_START_P, _C_START_A, _C_STEP_P, _C_STEP_A, _C_STOP_P, _C_STOP_A = 0, 1, 2, 3, 4, 5
_C_L_P, _C_L_A, _C_WORMS = 6, 7, 8
_N_COUNTERS = len(_COUNTER_NAMES)

_U53 = 1.0 / 9007199254740992.0  # 2^-53
_WORM_PROPOSALS_PER_SITE = 4  # calibrate(): about 4V worm proposals per sweep


@njit(cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def xoshiro_next(s0, s1, s2, s3):
    """One xoshiro256++ step: ``(output, s0, s1, s2, s3)`` (all uint64)."""
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@njit(cache=True)
def _state_consistent(cfg, f, nb_bwd, head, tail, delta, in_worm):
    """Recompute f and div k from the links; compare with the incremental state."""
    n_sites = f.size
    for x in range(n_sites):
        ft = 0
        div = 0
        for nu in range(2):
            xb = nb_bwd[nu, x]
            if cfg[2 + nu, x] < 0:
                return False
            ft += abs(cfg[nu, x]) + abs(cfg[nu, xb]) + 2 * (cfg[2 + nu, x] + cfg[2 + nu, xb])
            div += cfg[nu, x] - cfg[nu, xb]
        if ft != f[x]:
            return False
        expected = 0
        if in_worm != 0 and head != tail:
            if x == tail:
                expected = delta
            elif x == head:
                expected = -delta
        if div != expected:
            return False
    return True


@njit(cache=True)
def _advance_chain(
    cfg,
    f,
    rng,
    st,
    cnt,
    up2,
    down2,
    up4,
    fcap,
    nb_fwd,
    nb_bwd,
    mu_fac,
    amp,
    lemire_threshold,
    worms_per_sweep,
    n_sweeps,
    record_every,
    series,
    records,
    record_obs,
    debug,
):
    """Run one chain until ``st[_ST_SWEEPS] == n_sweeps`` sweeps; see the module docstring."""
    n_sites = f.size
    n_links = 2 * n_sites
    inv_amp = 1.0 / amp
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    head, tail, delta, in_worm = st[_ST_HEAD], st[_ST_TAIL], st[_ST_DELTA], st[_ST_IN_WORM]
    phase, link, attempts, sweeps = st[_ST_PHASE], st[_ST_LINK], st[_ST_WATT], st[_ST_SWEEPS]
    status = OK
    measure_series = series.shape[0] > 0
    # proposal / acceptance counters kept in registers, written back at the end
    c_start_p = c_start_a = c_step_p = c_step_a = c_stop_p = c_stop_a = np.int64(0)
    c_l_p = c_l_a = c_worms = np.int64(0)
    while sweeps < n_sweeps and status == OK:
        # ---- l update: one Metropolis proposal per link --------------------------------------
        if phase == 0:
            while link < n_links:
                x = link >> 1
                nu = link & 1
                y = nb_fwd[nu, x]
                r, t0, t1, t2, t3 = xoshiro_next(s0, s1, s2, s3)
                lv = np.int64(cfg[2 + nu, x])
                ka = np.int64(abs(cfg[nu, x]))
                fx = np.int64(f[x])
                fy = np.int64(f[y])
                u = np.float64(r >> np.uint64(11)) * _U53
                if (r & np.uint64(1)) == np.uint64(0):
                    if fx + 2 > fcap or fy + 2 > fcap:
                        status = NEED_GROW  # generator not advanced: resume repeats this proposal
                        break
                    s0, s1, s2, s3 = t0, t1, t2, t3
                    c_l_p += 1
                    ratio = up2[fx] * up2[fy] / np.float64((ka + lv + 1) * (lv + 1))
                    if ratio >= 1.0 or u < ratio:
                        cfg[2 + nu, x] = lv + 1
                        f[x] = fx + 2
                        f[y] = fy + 2
                        c_l_a += 1
                else:
                    s0, s1, s2, s3 = t0, t1, t2, t3
                    c_l_p += 1
                    if lv > 0:
                        ratio = down2[fx] * down2[fy] * np.float64((ka + lv) * lv)
                        if ratio >= 1.0 or u < ratio:
                            cfg[2 + nu, x] = lv - 1
                            f[x] = fx - 2
                            f[y] = fy - 2
                            c_l_a += 1
                link += 1
                if debug and not _state_consistent(cfg, f, nb_bwd, head, tail, delta, in_worm):
                    status = DEBUG_FAILED
                    break
            if status != OK:
                break
            phase = 1
            attempts = 0
        # ---- worms until the quota of worm proposals is met and the worm is closed ------------
        while attempts < worms_per_sweep or in_worm != 0:
            r, t0, t1, t2, t3 = xoshiro_next(s0, s1, s2, s3)
            bits = np.int64(r & np.uint64(7))
            u = np.float64(r >> np.uint64(11)) * _U53
            if in_worm == 0:
                # start: x0 uniform (Lemire's unbiased bounded integer, upper 32 bits), sign bit 0
                m = (r >> np.uint64(32)) * np.uint64(n_sites)
                while (m & np.uint64(0xFFFFFFFF)) < lemire_threshold:
                    r2, t0, t1, t2, t3 = xoshiro_next(t0, t1, t2, t3)
                    m = (r2 >> np.uint64(32)) * np.uint64(n_sites)
                x0 = np.int64(m >> np.uint64(32))
                fx = np.int64(f[x0])
                if fx + 2 > fcap:
                    status = NEED_GROW
                    break
                c_start_p += 1
                attempts += 1
                ratio = amp * up2[fx]
                accept = ratio >= 1.0
                if not accept:
                    r2, t0, t1, t2, t3 = xoshiro_next(t0, t1, t2, t3)
                    accept = np.float64(r2 >> np.uint64(11)) * _U53 < ratio
                s0, s1, s2, s3 = t0, t1, t2, t3
                if accept:
                    head = x0
                    tail = x0
                    delta = 1 if (bits & 1) == 0 else -1
                    in_worm = 1
                    c_start_a += 1
            else:
                factor = 1.0
                if head == tail:
                    if (bits & 4) != 0:
                        # propose to stop the zero-length worm
                        s0, s1, s2, s3 = t0, t1, t2, t3
                        c_stop_p += 1
                        ratio = inv_amp * down2[f[head] + 2]
                        if ratio >= 1.0 or u < ratio:
                            in_worm = 0
                            c_stop_a += 1
                            c_worms += 1
                        if debug and not _state_consistent(
                            cfg, f, nb_bwd, head, tail, delta, in_worm
                        ):
                            status = DEBUG_FAILED
                            break
                        continue
                    factor = 2.0
                nu = (bits >> 1) & 1
                if (bits & 1) == 0:  # s = +1: link (h, nu) changes by +delta
                    y = nb_fwd[nu, head]
                    li = head
                    dk = delta
                    sd = 0 if delta > 0 else 1
                else:  # s = -1: link (y, nu) changes by -delta
                    y = nb_bwd[nu, head]
                    li = y
                    dk = -delta
                    sd = 1 if delta > 0 else 0
                k_old = np.int64(cfg[nu, li])
                k_new = k_old + dk
                lv = np.int64(cfg[2 + nu, li])
                ak_old = abs(k_old)
                ak_new = abs(k_new)
                if ak_new > ak_old:
                    a_y = np.int64(f[y]) + (1 if y == tail else 0)
                    if a_y + 2 > fcap:
                        status = NEED_GROW
                        break
                    ratio = up2[a_y] / np.float64(ak_new + lv)
                else:
                    a_h = np.int64(f[head]) + (2 if head == tail else 1)
                    ratio = down2[a_h] * np.float64(ak_old + lv)
                ratio *= mu_fac[nu, sd] * factor
                if y == tail:
                    ratio *= 0.5
                s0, s1, s2, s3 = t0, t1, t2, t3
                c_step_p += 1
                if ratio >= 1.0 or u < ratio:
                    cfg[nu, li] = k_new
                    d = ak_new - ak_old
                    f[head] += d
                    f[y] += d
                    head = y
                    c_step_a += 1
            if debug and not _state_consistent(cfg, f, nb_bwd, head, tail, delta, in_worm):
                status = DEBUG_FAILED
                break
        if status != OK:
            break
        # ---- end of sweep: closed configuration --------------------------------------------
        if measure_series or (record_every > 0 and (sweeps + 1) % record_every == 0):
            n_sum = 0
            p2 = 0.0
            p4 = 0.0
            for x in range(n_sites):
                n_sum += cfg[0, x]
                p2 += up2[f[x]]
                p4 += up4[f[x]]
            if measure_series:
                series[sweeps, 0] = n_sum / n_sites
                series[sweeps, 1] = p2 / n_sites
                series[sweeps, 2] = p4 / n_sites
            if record_every > 0 and (sweeps + 1) % record_every == 0:
                rec = (sweeps + 1) // record_every - 1
                records[rec, :, :] = cfg
                record_obs[rec, 0] = n_sum / n_sites
                record_obs[rec, 1] = p2 / n_sites
                record_obs[rec, 2] = p4 / n_sites
        sweeps += 1
        phase = 0
        link = 0
    rng[0], rng[1], rng[2], rng[3] = s0, s1, s2, s3
    cnt[_C_START_P] += c_start_p
    cnt[_C_START_A] += c_start_a
    cnt[_C_STEP_P] += c_step_p
    cnt[_C_STEP_A] += c_step_a
    cnt[_C_STOP_P] += c_stop_p
    cnt[_C_STOP_A] += c_stop_a
    cnt[_C_L_P] += c_l_p
    cnt[_C_L_A] += c_l_a
    cnt[_C_WORMS] += c_worms
    st[_ST_HEAD], st[_ST_TAIL], st[_ST_DELTA], st[_ST_IN_WORM] = head, tail, delta, in_worm
    st[_ST_PHASE], st[_ST_LINK], st[_ST_WATT], st[_ST_SWEEPS] = phase, link, attempts, sweeps
    return status


@njit(cache=True, parallel=True)
def _advance_chains(
    cfgs,
    fs,
    rngs,
    sts,
    cnts,
    up2,
    down2,
    up4,
    fcap,
    nb_fwd,
    nb_bwd,
    mu_fac,
    amp,
    lemire_threshold,
    worms_per_sweep,
    n_sweeps,
    record_every,
    series,
    records,
    record_obs,
    debug,
    status,
):
    for c in prange(cfgs.shape[0]):
        status[c] = _advance_chain(
            cfgs[c],
            fs[c],
            rngs[c],
            sts[c],
            cnts[c],
            up2,
            down2,
            up4,
            fcap,
            nb_fwd,
            nb_bwd,
            mu_fac,
            amp,
            lemire_threshold,
            worms_per_sweep,
            n_sweeps,
            record_every,
            series[c],
            records[c],
            record_obs[c],
            debug,
        )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _neighbour_tables(lattice: Lattice) -> tuple[np.ndarray, np.ndarray]:
    """``nb_fwd[nu, x]`` = x + ν̂, ``nb_bwd[nu, x]`` = x − ν̂, sites flattened as ``t·Nx + x``."""
    nt, nx = lattice.nt, lattice.nx
    idx = np.arange(nt * nx).reshape(nt, nx)
    fwd = np.stack([np.roll(idx, -1, axis=0).ravel(), np.roll(idx, -1, axis=1).ravel()])
    bwd = np.stack([np.roll(idx, 1, axis=0).ravel(), np.roll(idx, 1, axis=1).ravel()])
    return fwd.astype(np.int64), bwd.astype(np.int64)


@dataclass
class ChainRun:
    """Output of :meth:`WormChains.run`.

    Attributes:
        series: ``(C, n_sweeps, 3)`` float64 ``[n, phi2, phi4]`` after every sweep (or ``None``).
        configs: ``(C, R, 4, Nt, Nx)`` int32 configurations after every ``record_every``-th sweep.
        observables: ``(C, R, 3)`` ``[n, phi2, phi4]`` of the recorded configurations, as the
            kernel measured them (from its incremental ``f``).
    """

    series: np.ndarray | None
    configs: np.ndarray
    observables: np.ndarray


class WormChains:
    """Independent worm-algorithm Markov chains for one ``(params, lattice)``, run in parallel.

    Chain ``c`` draws from xoshiro256++ seeded by ``SeedSequence(seed).spawn(n_chains)[c]``, so
    results are identical for any number of threads. Chains start from the empty configuration
    (all ``k = l = 0``).

    Args:
        params, lattice: validated before anything else.
        seed: non-negative integer (or a ``numpy.random.SeedSequence``).
        n_chains: number of independent chains (not tied to the number of threads).
        table: a :class:`WeightTable` for ``(params.eta, params.lam)``; grows on demand.
        amplitude: the worm amplitude ``A > 0`` (1 by default; any value samples the same P[k, l]).
        debug: recompute the state from scratch after every proposal (slow; for tests).
    """

    def __init__(
        self,
        params: PhysicsParams,
        lattice: Lattice,
        seed: int | np.random.SeedSequence,
        n_chains: int = 1,
        *,
        table: WeightTable | None = None,
        amplitude: float = 1.0,
        worms_per_sweep: int | None = None,
        debug: bool = False,
    ) -> None:
        validate_point(params, lattice)
        _check_int("n_chains", n_chains, 1)
        if not isinstance(seed, np.random.SeedSequence):
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
            seed = np.random.SeedSequence(int(seed))
        if not (isinstance(amplitude, int | float) and np.isfinite(amplitude) and amplitude > 0):
            raise ValueError(f"amplitude must be a finite number > 0, got {amplitude!r}")
        if table is None:
            table = WeightTable(params.eta, params.lam)
        elif (table.eta, table.lam) != (float(params.eta), float(params.lam)):
            raise ValueError(
                f"weight table is for (eta, lam) = ({table.eta}, {table.lam}), "
                f"params have ({params.eta}, {params.lam})"
            )
        self.params, self.lattice, self.table = params, lattice, table
        self.n_chains = int(n_chains)
        self.amplitude = float(amplitude)
        self.debug = bool(debug)
        volume = lattice.volume
        if worms_per_sweep is None:
            worms_per_sweep = max(1, volume // 4)  # provisional until calibrate()
        _check_int("worms_per_sweep", worms_per_sweep, 1)
        self.worms_per_sweep = int(worms_per_sweep)
        self._nb_fwd, self._nb_bwd = _neighbour_tables(lattice)
        self._lemire_threshold = np.uint64((2**32 - volume) % volume)
        mu = float(params.mu)
        self._mu_fac = np.array([[np.exp(mu), np.exp(-mu)], [1.0, 1.0]])
        self._cfg = np.zeros((self.n_chains, 4, volume), dtype=np.int32)
        self._f = np.zeros((self.n_chains, volume), dtype=np.int32)
        self._rng = np.empty((self.n_chains, 4), dtype=np.uint64)
        for c, child in enumerate(seed.spawn(self.n_chains)):
            state = child.generate_state(4, dtype=np.uint64)
            if not state.any():  # xoshiro's one forbidden state (probability 2^-256)
                state[0] = 1
            self._rng[c] = state
        self._state = np.zeros((self.n_chains, _N_STATE), dtype=np.int64)
        self._counters = np.zeros((self.n_chains, _N_COUNTERS), dtype=np.int64)
        self._sweeps_total = 0
        self._tables_for: int = -1
        self._refresh_tables()

    def _refresh_tables(self) -> None:
        if self._tables_for == self.table.f_max:
            return
        log_w = self.table.log_w
        self._up2 = self.table.ratio(2)  # W(a+2)/W(a), a = 0..f_max-2
        self._up4 = self.table.ratio(4)  # W(a+4)/W(a), a = 0..f_max-4
        self._down2 = np.zeros(log_w.size)  # W(a-2)/W(a), a = 2..f_max (0 below: never used)
        self._down2[2:] = [math.exp(v) for v in (log_w[:-2] - log_w[2:]).tolist()]
        self._tables_for = self.table.f_max

    @property
    def sweeps_done(self) -> int:
        """Sweeps completed by every chain so far."""
        return self._sweeps_total

    def configs(self) -> np.ndarray:
        """Current configurations, ``(C, 4, Nt, Nx)`` int32 (a copy)."""
        return self._cfg.reshape(self.n_chains, 4, *self.lattice.shape).copy()

    def counters(self) -> dict[str, int]:
        """Proposal/acceptance counts summed over chains, plus ``worm_proposals``."""
        total = self._counters.sum(axis=0)
        out = {name: int(v) for name, v in zip(_COUNTER_NAMES, total, strict=True)}
        out["worm_proposals"] = out["start_proposed"] + out["step_proposed"] + out["stop_proposed"]
        return out

    def acceptance(self) -> dict[str, float]:
        """Acceptance rates of the worm start/step/stop and l proposals (NaN if none proposed)."""
        c = self.counters()
        rate = {}
        for move in ("start", "step", "stop", "l"):
            p = c[f"{move}_proposed"]
            rate[f"worm_{move}" if move != "l" else "l_update"] = (
                c[f"{move}_accepted"] / p if p else float("nan")
            )
        return rate

    def calibrate(self, n_sweeps: int = 20) -> int:
        """Run ``n_sweeps`` sweeps (thermalisation) and set ``worms_per_sweep`` from them.

        The new value is ``round(4V / m)``, clipped to ``[1, 4V]``, where ``m`` is the mean number of
        worm proposals per worm attempt in these sweeps (all chains together), so that one sweep has
        about ``4V`` worm proposals on average (twice the number of links: the worm moves all the
        flux, and cost per independent sample was lowest near this balance, mildly so, on 8×8,
        32×32 and 60×4). Deterministic for a given seed.
        """
        _check_int("n_sweeps", n_sweeps, 1)
        before = self.counters()
        self.run(n_sweeps, series=False)
        after = self.counters()
        attempts = after["start_proposed"] - before["start_proposed"]
        proposals = after["worm_proposals"] - before["worm_proposals"]
        target = _WORM_PROPOSALS_PER_SITE * self.lattice.volume
        self.worms_per_sweep = int(min(max(round(target * attempts / proposals), 1), target))
        return self.worms_per_sweep

    def run(self, n_sweeps: int, *, record_every: int = 0, series: bool = True) -> ChainRun:
        """Advance every chain by ``n_sweeps`` sweeps.

        Args:
            n_sweeps: sweeps per chain (>= 0).
            record_every: if > 0, store the configuration after every ``record_every``-th sweep.
            series: measure ``[n, phi2, phi4]`` after every sweep.
        """
        _check_int("n_sweeps", n_sweeps, 0)
        _check_int("record_every", record_every, 0)
        n_sweeps, record_every = int(n_sweeps), int(record_every)
        n_rec = n_sweeps // record_every if record_every > 0 else 0
        volume = self.lattice.volume
        ser = np.zeros((self.n_chains, n_sweeps if series else 0, 3))
        records = np.zeros((self.n_chains, n_rec, 4, volume), dtype=np.int32)
        rec_obs = np.zeros((self.n_chains, n_rec, 3))
        status = np.zeros(self.n_chains, dtype=np.int64)
        self._state[:, _ST_SWEEPS] = 0
        while True:
            self._refresh_tables()
            _advance_chains(
                self._cfg,
                self._f,
                self._rng,
                self._state,
                self._counters,
                self._up2,
                self._down2,
                self._up4,
                np.int64(self.table.f_max - 4),
                self._nb_fwd,
                self._nb_bwd,
                self._mu_fac,
                self.amplitude,
                self._lemire_threshold,
                np.int64(self.worms_per_sweep),
                np.int64(n_sweeps),
                np.int64(record_every),
                ser,
                records,
                rec_obs,
                self.debug,
                status,
            )
            if np.any(status == DEBUG_FAILED):
                bad = np.flatnonzero(status == DEBUG_FAILED).tolist()
                raise RuntimeError(f"worm kernel state check failed in chains {bad}")
            if np.any(status == NEED_GROW):
                self.table.ensure(2 * self.table.f_max)
                continue
            break
        self._sweeps_total += n_sweeps
        shape = self.lattice.shape
        return ChainRun(
            series=ser if series else None,
            configs=records.reshape(self.n_chains, n_rec, 4, *shape),
            observables=rec_obs,
        )

    def check_state(self) -> None:
        """Recompute ``f`` and div k of every chain from scratch (numpy); raise on a mismatch."""
        cfg = self.configs()
        f_ref = site_f(cfg).reshape(self.n_chains, -1)
        if not np.array_equal(f_ref, self._f):
            bad = np.flatnonzero((f_ref != self._f).any(axis=1)).tolist()
            raise RuntimeError(
                f"incremental site flux f differs from recomputation in chains {bad}"
            )
        div = flux_divergence(cfg).reshape(self.n_chains, -1)
        for c in range(self.n_chains):
            head, tail, delta, in_worm = self._state[c, :4]
            expected = np.zeros(div.shape[1], dtype=np.int64)
            if in_worm and head != tail:
                expected[tail] += delta
                expected[head] -= delta
            if not np.array_equal(div[c], expected):
                raise RuntimeError(f"div k of chain {c} is not that of its worm state")
        if np.any(cfg[:, 2:] < 0):
            raise RuntimeError("negative l found")
