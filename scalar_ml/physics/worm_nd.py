r"""The lifted worm algorithm on a d-dimensional lattice (d = 2, 3, 4; numba), SPEC §3-4.

This is :mod:`.worm` (read its docstring first: target distribution, extended ensemble, lifting,
moves, sweeps, generator streams, table growth) with the number of directions a parameter. On a
lattice ``N_0 × … × N_{d-1}`` (time first; only ν = 0 carries μ) a site has ``2d`` links, so

* the site flux :math:`f_x` sums the ``2d`` links touching ``x`` (SPEC §3);
* a worm step picks ν uniformly among the ``d`` directions and moves the head in the orientation
  :math:`\theta_\nu` of that direction (one lifting variable per direction, reversed on a rejected
  ν-step, as in 2D); the ratio has :math:`e^{\mu s\Delta}` for ν = 0 only;
* a sweep is one l proposal on each of the ``dV`` links (site-major, ν = 0 … d−1), then
  ``worms_per_sweep`` worm attempts; calibration aims at about ``4V`` worm proposals per sweep,
  as in 2D.

**Random bits.** Each proposal draws one 64-bit number ``r``: bit 0 is the sign Δ of a started
worm, bit 2 chooses between stop and step at ``h = t``, the top 53 bits give the uniform number of
the Metropolis test (and the upper 32 bits the start site, through Lemire's method). The direction
of a step is bit 1 in 2D (exactly as in :mod:`.worm`) and, for d = 3, 4, the byte ``v`` in bits
3 … 10: ``ν = v mod d``, with ``v = 255`` redrawn from the next number for d = 3 (256 is not a
multiple of 3), so ν is exactly uniform and independent of Δ, of the stop bit and of the uniform
number. A proposal that needs a larger weight table rewinds the generator to before it (as in 2D).

**2D.** With d = 2 this kernel makes the same draws and the same arithmetic as the 2D kernel of
:mod:`.worm`, so it reproduces its trajectories bit for bit
(``tests/physics/test_worm_nd.py``: that is the check that the generalisation did not change the
algorithm). :func:`scalar_ml.physics.ensemble.generate_ensemble` runs the 2D kernel for 2D
lattices and this one for d = 3, 4 (:func:`worm_chains`).

**State.** ``links[x, j]`` (int32, site-major; ``j = ν`` is :math:`k_{x,ν}`, ``j = d + ν`` is
:math:`l_{x,ν}`, the link from ``x`` to ``x + ν̂``), ``f[x]`` and the neighbour table
``nbr[x, 2ν + (s == −1)] = x + sν̂``, sites numbered in row-major order of the shape (time
first). Recorded configurations are SPEC §3's ``(2d, N_0, …, N_{d-1})``.

>>> from scalar_ml.physics.params import Lattice, PhysicsParams
>>> chains = WormChainsND(PhysicsParams(6.01, 1.0, 0.5), Lattice(4, 4, 2), seed=1, n_chains=2,
...                       debug=True)
>>> out = chains.run(10, record_every=5)
>>> out.series.shape, out.configs.shape
((2, 10, 3), (2, 2, 6, 4, 4, 2))
>>> chains.check_state()                              # f and div k recomputed from scratch
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from scalar_ml.physics.observables import flux_divergence, site_f
from scalar_ml.physics.params import Lattice, PhysicsParams, validate_point
from scalar_ml.physics.weights import WeightTable
from scalar_ml.physics.worm import DEBUG_FAILED, NEED_GROW, OK, ChainRun, WormChains, xoshiro_next

__all__ = ["WormChainsND", "neighbour_table_nd", "worm_chains"]

# fields of the per-chain state vector
_ST_HEAD, _ST_TAIL, _ST_DELTA, _ST_IN_WORM, _ST_THETA = 0, 1, 2, 3, 4  # theta: bit nu = theta_nu
_ST_PHASE, _ST_LINK, _ST_WCOUNT, _ST_SWEEPS = 5, 6, 7, 8
_N_STATE = 9
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
def _state_consistent(links, f, nbr, dims, head, tail, delta, in_worm):
    """Recompute f and div k from the links; compare with the incremental state."""
    n_sites = f.size
    nl = 2 * dims
    for x in range(n_sites):
        ft = 0
        div = 0
        for nu in range(dims):
            xb = nbr[x * nl + 2 * nu + 1]
            if links[x * nl + dims + nu] < 0:
                return False
            ft += (
                abs(links[x * nl + nu])
                + abs(links[xb * nl + nu])
                + 2 * (links[x * nl + dims + nu] + links[xb * nl + dims + nu])
            )
            div += links[x * nl + nu] - links[xb * nl + nu]
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


@njit(cache=True, error_model="numpy")
def _advance_chain(
    links,
    f,
    nbr,
    dims,
    rng,
    st,
    cnt,
    up2,
    down2,
    up4,
    fcap,
    mu_fac,
    amp,
    lemire_threshold,
    worms_per_sweep,
    proposal_quota,
    n_sweeps,
    record_first,
    record_every,
    series,
    records,
    record_obs,
    debug,
    corr,
    slab,
):
    """Run one chain until ``st[_ST_SWEEPS] == n_sweeps`` sweeps (the 2D kernel's
    ``_advance_chain`` with ``dims`` directions; see the module docstrings).

    With ``corr.size > 0`` (= N_0), the open worm after every worm proposal adds 1 to
    ``corr[(t_head - t_tail) mod N_0]``, ``t = x // slab`` (``slab`` sites per time slice)."""
    n_sites = f.size
    n_time = corr.size
    count_corr = n_time > 0
    nl = 2 * dims  # link variables per site, and directions (+nu, -nu) per site
    n_links = dims * n_sites
    byte_limit = 256 - 256 % dims  # direction byte v < byte_limit: nu = v % dims is uniform
    inv_amp = 1.0 / amp
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    head, tail, delta, in_worm = st[_ST_HEAD], st[_ST_TAIL], st[_ST_DELTA], st[_ST_IN_WORM]
    theta = st[_ST_THETA]
    phase, link, wcount, sweeps = st[_ST_PHASE], st[_ST_LINK], st[_ST_WCOUNT], st[_ST_SWEEPS]
    by_quota = proposal_quota > 0
    wquota = proposal_quota if by_quota else worms_per_sweep
    status = OK
    measure_series = series.shape[0] > 0
    c_start_p = c_start_a = c_step_p = c_step_a = c_stop_p = c_stop_a = np.int64(0)
    c_l_p = c_l_a = c_worms = np.int64(0)
    while sweeps < n_sweeps and status == OK:
        # ---- l update: one Metropolis proposal per link --------------------------------------
        if phase == 0:
            while link < n_links:
                x = link // dims
                nu = link - x * dims
                y = nbr[x * nl + 2 * nu]
                r, t0, t1, t2, t3 = xoshiro_next(s0, s1, s2, s3)
                lv = np.int64(links[x * nl + dims + nu])
                ka = np.int64(abs(links[x * nl + nu]))
                fx = np.int64(f[x])
                fy = np.int64(f[y])
                u = np.float64(r >> np.uint64(11)) * _U53
                if (r & np.uint64(1)) == np.uint64(0):
                    if fx + 2 > fcap or fy + 2 > fcap:
                        status = NEED_GROW  # generator not advanced: resume repeats this proposal
                        break
                    s0, s1, s2, s3 = t0, t1, t2, t3
                    c_l_p += 1
                    num = up2[fx] * up2[fy]
                    den = np.float64((ka + lv + 1) * (lv + 1))
                    if num >= den or u * den < num:
                        links[x * nl + dims + nu] = lv + 1
                        f[x] = fx + 2
                        f[y] = fy + 2
                        c_l_a += 1
                else:
                    s0, s1, s2, s3 = t0, t1, t2, t3
                    c_l_p += 1
                    if lv > 0:
                        ratio = down2[fx] * down2[fy] * np.float64((ka + lv) * lv)
                        if ratio >= 1.0 or u < ratio:
                            links[x * nl + dims + nu] = lv - 1
                            f[x] = fx - 2
                            f[y] = fy - 2
                            c_l_a += 1
                link += 1
                if debug and not _state_consistent(links, f, nbr, dims, head, tail, delta, in_worm):
                    status = DEBUG_FAILED
                    break
            if status != OK:
                break
            phase = 1
            wcount = 0
        # ---- worm attempts until the quota is met and the worm is closed ----------------------
        while wcount < wquota or in_worm != 0:
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
                wcount += 1
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
                if by_quota:
                    wcount += 1
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
                        elif count_corr:
                            corr[0] += 1  # still the zero-length worm
                        if debug and not _state_consistent(
                            links, f, nbr, dims, head, tail, delta, in_worm
                        ):
                            status = DEBUG_FAILED
                            break
                        continue
                    factor = 2.0
                # step: nu uniform among the d directions, orientation s = theta_nu (bit nu)
                if dims == 2:
                    nu = (bits >> 1) & 1
                else:
                    v = np.int64((r >> np.uint64(3)) & np.uint64(0xFF))
                    while v >= byte_limit:
                        r2, t0, t1, t2, t3 = xoshiro_next(t0, t1, t2, t3)
                        v = np.int64((r2 >> np.uint64(3)) & np.uint64(0xFF))
                    nu = v % dims
                sb = (theta >> nu) & 1
                y = np.int64(nbr[head * nl + 2 * nu + sb])
                # s = +1: link (h, nu) changes by +delta; s = -1: link (y, nu) by -delta
                li = head + (y - head) * sb
                dk = delta - 2 * delta * sb
                k_old = np.int64(links[li * nl + nu])
                k_new = k_old + dk
                lv = np.int64(links[li * nl + dims + nu])
                ak_old = abs(k_old)
                ak_new = abs(k_new)
                if ak_new > ak_old:
                    a_y = np.int64(f[y]) + (1 if y == tail else 0)
                    if a_y + 2 > fcap:
                        if by_quota:
                            wcount -= 1
                        status = NEED_GROW
                        break
                    num = up2[a_y]
                    den = np.float64(ak_new + lv)
                else:
                    a_h = np.int64(f[head]) + (2 if head == tail else 1)
                    num = down2[a_h] * np.float64(ak_old + lv)
                    den = 1.0
                num *= mu_fac[2 * nu + (1 if dk < 0 else 0)] * factor
                if y == tail:
                    num *= 0.5
                s0, s1, s2, s3 = t0, t1, t2, t3
                c_step_p += 1
                if num >= den or u * den < num:
                    links[li * nl + nu] = k_new
                    d = ak_new - ak_old
                    f[head] += d
                    f[y] += d
                    head = y
                    c_step_a += 1
                else:
                    theta ^= 1 << nu
            if count_corr and in_worm != 0:
                dt = head // slab - tail // slab
                corr[dt + n_time if dt < 0 else dt] += 1
            if debug and not _state_consistent(links, f, nbr, dims, head, tail, delta, in_worm):
                status = DEBUG_FAILED
                break
        if status != OK:
            break
        # ---- end of sweep: closed configuration --------------------------------------------
        sweeps += 1
        record = (
            record_every > 0
            and sweeps >= record_first
            and (sweeps - record_first) % record_every == 0
        )
        if measure_series or record:
            n_sum = 0
            p2 = 0.0
            p4 = 0.0
            for x in range(n_sites):
                n_sum += links[x * nl + 0]
                p2 += up2[f[x]]
                p4 += up4[f[x]]
            if measure_series:
                series[sweeps - 1, 0] = n_sum / n_sites
                series[sweeps - 1, 1] = p2 / n_sites
                series[sweeps - 1, 2] = p4 / n_sites
            if record:
                rec = (sweeps - record_first) // record_every
                for j in range(nl):
                    for x in range(n_sites):
                        records[rec, j, x] = links[x * nl + j]
                record_obs[rec, 0] = n_sum / n_sites
                record_obs[rec, 1] = p2 / n_sites
                record_obs[rec, 2] = p4 / n_sites
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
    st[_ST_THETA] = theta
    st[_ST_PHASE], st[_ST_LINK], st[_ST_WCOUNT], st[_ST_SWEEPS] = phase, link, wcount, sweeps
    return status


@njit(cache=True, parallel=True)
def _advance_chains(
    links,
    fs,
    nbr,
    dims,
    rngs,
    sts,
    cnts,
    up2,
    down2,
    up4,
    fcap,
    mu_fac,
    amp,
    lemire_threshold,
    worms_per_sweep,
    proposal_quota,
    n_sweeps,
    record_first,
    record_every,
    series,
    records,
    record_obs,
    debug,
    corr,
    slab,
    status,
):
    for c in prange(links.shape[0]):
        status[c] = _advance_chain(
            links[c],
            fs[c],
            nbr,
            dims,
            rngs[c],
            sts[c],
            cnts[c],
            up2,
            down2,
            up4,
            fcap,
            mu_fac,
            amp,
            lemire_threshold,
            worms_per_sweep,
            proposal_quota,
            n_sweeps,
            record_first,
            record_every,
            series[c],
            records[c],
            record_obs[c],
            debug,
            corr[c],
            slab,
        )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def neighbour_table_nd(lattice: Lattice) -> np.ndarray:
    """``nbr[x, 2ν + (s == -1)]`` = x + sν̂ (int32, ``(V, 2d)``), sites in row-major order of
    ``lattice.shape`` (2D: the table of :func:`scalar_ml.physics.worm.neighbour_table`).

    >>> neighbour_table_nd(Lattice(2, 3, 2))[1].tolist()  # site (0, 0, 1): ±t, ±x, ±y
    [7, 7, 3, 5, 0, 0]
    """
    idx = np.arange(lattice.volume).reshape(lattice.shape)
    table = np.empty((lattice.volume, 2 * lattice.dims), dtype=np.int32)
    for nu in range(lattice.dims):
        table[:, 2 * nu] = np.roll(idx, -1, axis=nu).ravel()
        table[:, 2 * nu + 1] = np.roll(idx, 1, axis=nu).ravel()
    return table


class WormChainsND:
    """Independent lifted-worm Markov chains for one ``(params, lattice)`` on a lattice of any
    dimension d = 2, 3, 4; the interface of :class:`~scalar_ml.physics.worm.WormChains`
    (configurations ``(C, 2d, *shape)``).

    Chain ``c`` draws from xoshiro256++ seeded by ``SeedSequence(seed).spawn(n_chains)[c]``, so
    results are identical for any number of threads. Chains start from the empty configuration
    with orientations θ_ν = +1.

    Args:
        params, lattice: validated before anything else (the free theory's existence in the
            lattice's dimension).
        seed: non-negative integer (or a ``numpy.random.SeedSequence``).
        n_chains: number of independent chains (not tied to the number of threads).
        table: a :class:`WeightTable` for ``(params.eta, params.lam)``; grows on demand.
        amplitude: the worm amplitude ``A > 0``.
        worms_per_sweep: worm attempts per sweep; by default ``V/4`` until :meth:`calibrate`.
        debug: recompute the state from scratch after every proposal (slow; for tests).
        correlator: accumulate the time separation of head and tail of the open worm after every
            worm proposal (:attr:`time_correlator`, the zero-momentum two-point function).
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
        correlator: bool = False,
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
        self.dims = lattice.dims
        self.n_chains = int(n_chains)
        self.amplitude = float(amplitude)
        self.debug = bool(debug)
        volume = lattice.volume
        if worms_per_sweep is None:
            worms_per_sweep = max(1, volume // 4)  # provisional until calibrate()
        _check_int("worms_per_sweep", worms_per_sweep, 1)
        self.worms_per_sweep = int(worms_per_sweep)
        self._nbr = neighbour_table_nd(lattice)
        self._lemire_threshold = np.uint64((2**32 - volume) % volume)
        mu = float(params.mu)
        # mu_fac[nu, (s Delta < 0)] = e^{mu s Delta delta_{nu,0}}
        self._mu_fac = np.ones((self.dims, 2))
        self._mu_fac[0] = [np.exp(mu), np.exp(-mu)]
        n_vars = 2 * self.dims
        self._links = np.zeros((self.n_chains, volume, n_vars), dtype=np.int32)
        self._f = np.zeros((self.n_chains, volume), dtype=np.int32)
        self._rng = np.empty((self.n_chains, 4), dtype=np.uint64)
        for c, child in enumerate(seed.spawn(self.n_chains)):
            state = child.generate_state(4, dtype=np.uint64)
            if not state.any():  # xoshiro's one forbidden state (probability 2^-256)
                state[0] = 1
            self._rng[c] = state
        self._state = np.zeros((self.n_chains, _N_STATE), dtype=np.int64)
        self._counters = np.zeros((self.n_chains, _N_COUNTERS), dtype=np.int64)
        self._corr = np.zeros((self.n_chains, lattice.nt if correlator else 0), dtype=np.int64)
        self._sweeps_total = 0
        self._tables_for: int = -1
        self._refresh_tables()

    @property
    def time_correlator(self) -> np.ndarray:
        r"""``(C, N_0)`` counts of open-worm states by the time separation ``(t_h − t_t) mod N_0``
        of head and tail, one count per worm proposal (``correlator=True``; else ``(C, 0)``).

        An open worm with head ``h``, tail ``t`` and sign Δ has the weight of the configurations
        of :math:`\langle\phi_t\phi^*_h\rangle` (Δ = +1) or its conjugate (:mod:`.worm`:
        :math:`W(f_x + 1)` at both ends, :math:`W(f_x + 2)` at ``h = t``), so the counts are
        proportional to :math:`C(\tau) = \sum_{\vec x}\langle\phi^*(\tau, \vec x)\phi(0)\rangle
        + c.c.`, the zero-momentum two-point function (:mod:`scalar_ml.physics.spectrum`).
        """
        return self._corr.copy()

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
        """Sweeps completed by every chain so far (calibration sweeps included)."""
        return self._sweeps_total

    def configs(self) -> np.ndarray:
        """Current configurations, ``(C, 2d, *shape)`` int32 (a copy)."""
        cfg = np.ascontiguousarray(self._links.transpose(0, 2, 1))
        return cfg.reshape(self.n_chains, 2 * self.dims, *self.lattice.shape)

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
        """Run ``n_sweeps`` proposal-quota sweeps and set ``worms_per_sweep`` (about ``4V`` worm
        proposals per sweep), as :meth:`~scalar_ml.physics.worm.WormChains.calibrate`."""
        _check_int("n_sweeps", n_sweeps, 1)
        before = self.counters()
        target = _WORM_PROPOSALS_PER_SITE * self.lattice.volume
        self.run(n_sweeps, series=False, proposal_quota=target)
        after = self.counters()
        attempts = after["start_proposed"] - before["start_proposed"]
        proposals = after["worm_proposals"] - before["worm_proposals"]
        self.worms_per_sweep = int(min(max(round(target * attempts / proposals), 1), target))
        return self.worms_per_sweep

    def run(
        self,
        n_sweeps: int,
        *,
        record_every: int = 0,
        record_first: int | None = None,
        series: bool = True,
        proposal_quota: int | None = None,
    ) -> ChainRun:
        """Advance every chain by ``n_sweeps`` sweeps (arguments as for
        :meth:`scalar_ml.physics.worm.WormChains.run`); configurations are ``(C, R, 2d, *shape)``."""
        _check_int("n_sweeps", n_sweeps, 0)
        _check_int("record_every", record_every, 0)
        if record_first is None:
            record_first = max(record_every, 1)
        _check_int("record_first", record_first, 1)
        if proposal_quota is not None:
            _check_int("proposal_quota", proposal_quota, 1)
        n_sweeps, record_every, record_first = int(n_sweeps), int(record_every), int(record_first)
        n_rec = 0
        if record_every > 0 and n_sweeps >= record_first:
            n_rec = (n_sweeps - record_first) // record_every + 1
        volume = self.lattice.volume
        n_vars = 2 * self.dims
        ser = np.zeros((self.n_chains, n_sweeps if series else 0, 3))
        records = np.zeros((self.n_chains, n_rec, n_vars, volume), dtype=np.int32)
        rec_obs = np.zeros((self.n_chains, n_rec, 3))
        status = np.zeros(self.n_chains, dtype=np.int64)
        self._state[:, _ST_SWEEPS] = 0
        while True:
            self._refresh_tables()
            _advance_chains(
                self._links.reshape(self.n_chains, -1),  # flat views: x * 2d + j
                self._f,
                self._nbr.reshape(-1),
                np.int64(self.dims),
                self._rng,
                self._state,
                self._counters,
                self._up2,
                self._down2,
                self._up4,
                np.int64(self.table.f_max - 4),
                self._mu_fac.reshape(-1),
                self.amplitude,
                self._lemire_threshold,
                np.int64(self.worms_per_sweep),
                np.int64(proposal_quota or 0),
                np.int64(n_sweeps),
                np.int64(record_first),
                np.int64(record_every),
                ser,
                records,
                rec_obs,
                self.debug,
                self._corr,
                np.int64(volume // self.lattice.nt),
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
        return ChainRun(
            series=ser if series else None,
            configs=records.reshape(self.n_chains, n_rec, n_vars, *self.lattice.shape),
            observables=rec_obs,
        )

    def check_state(self) -> None:
        """Recompute ``f`` and div k of every chain from scratch (numpy); raise on a mismatch."""
        cfg = self.configs()
        f_ref = site_f(cfg, dims=self.dims).reshape(self.n_chains, -1)
        if not np.array_equal(f_ref, self._f):
            bad = np.flatnonzero((f_ref != self._f).any(axis=1)).tolist()
            raise RuntimeError(
                f"incremental site flux f differs from recomputation in chains {bad}"
            )
        div = flux_divergence(cfg, dims=self.dims).reshape(self.n_chains, -1)
        for c in range(self.n_chains):
            head, tail, delta, in_worm = self._state[c, :4]
            expected = np.zeros(div.shape[1], dtype=np.int64)
            if in_worm and head != tail:
                expected[tail] += delta
                expected[head] -= delta
            if not np.array_equal(div[c], expected):
                raise RuntimeError(f"div k of chain {c} is not that of its worm state")
        if np.any(cfg[:, self.dims :] < 0):
            raise RuntimeError("negative l found")


def worm_chains(
    params: PhysicsParams,
    lattice: Lattice,
    seed: int | np.random.SeedSequence,
    n_chains: int = 1,
    **options: object,
) -> WormChains | WormChainsND:
    """The worm chains for ``lattice``: the 2D kernel (:class:`~scalar_ml.physics.worm.WormChains`)
    on 2D lattices, :class:`WormChainsND` in d = 3, 4 dimensions (keyword ``options`` as theirs)."""
    if not isinstance(lattice, Lattice):
        raise ValueError(f"lattice must be a Lattice, got {type(lattice).__name__}")
    chains = WormChains if lattice.dims == 2 else WormChainsND
    return chains(params, lattice, seed, n_chains, **options)  # type: ignore[arg-type]
