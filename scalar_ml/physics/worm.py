r"""Lifted worm update of the fluxes ``k`` and Metropolis update of ``l`` (numba), SPEC §4.

Target distribution (SPEC §2), on closed configurations (:math:`\operatorname{div} k = 0`):

.. math::

    P[k, l] \propto \prod_{x,\nu} \frac{e^{\mu\,\delta_{\nu,t} k_{x,\nu}}}
        {(|k_{x,\nu}| + l_{x,\nu})!\; l_{x,\nu}!} \; \prod_x W(f_x).

**Worm (extended ensemble).** Open states carry a head ``h``, a tail ``t`` and a sign
:math:`\Delta = \pm1`, with :math:`\operatorname{div}_x k = \Delta(\delta_{x,t} - \delta_{x,h})`,
and weight *link product* × :math:`\prod_x W(f_x + c_x)` × ``A/V``, where :math:`c_x = 1` at the
head and at the tail when ``h != t`` and :math:`c_h = 2` for the zero-length worm ``h = t``.

**Lifting.** Every chain also carries one orientation :math:`\theta_\nu = \pm1` per direction ν
(*lifting* variables, uniformly distributed and independent of the configuration in the stationary
state). A step of the head in direction ν goes to :math:`y = h + \theta_\nu\hat\nu`, with only ν
drawn at random, and a rejected step reverses :math:`\theta_\nu`. The head therefore moves
persistently along each axis until a rejection turns it around, instead of retracing its last step
in a third of its moves as a head with random orientations does; at equal cost per sweep this cuts
τ_int by about 1.9 on 32×32 and 1.6 on 64×64 (μ = 1; one orientation shared by both directions
gains only 1.4; ``benchmarks/bench_sampler.py`` for the resulting efficiency). The moves, each a
Metropolis step whose ratio includes the proposal probabilities:

* *start* (closed → ``h = t = x0``): pick ``x0`` uniformly and :math:`\Delta = \pm1`; accept with
  :math:`\min(1, A\,W(f+2)/W(f))` at ``x0``; θ is kept either way;
* at ``h = t``, with probability ½ propose *stop*: accept with :math:`\min(1, W(f)/(A\,W(f+2)))`; θ
  is kept either way; otherwise propose a step, whose ratio gets a factor 2 (its reverse move has
  no ½);
* *step*: pick ν uniformly, :math:`s = \theta_\nu`, y = h + sν̂. For s = +1 the link (h, ν) changes
  by +Δ, for s = −1 the link (y, ν) changes by −Δ (so div k stays Δ(δ_t − δ_h) with the head moved
  to y). Ratio: :math:`e^{\mu s\Delta\delta_{\nu,t}}` × :math:`1/(|k'|+l)` if :math:`|k'| > |k|`,
  else :math:`(|k|+l)` × the site weights. The argument :math:`f_x + c_x` changes only at one site:
  it grows by 2 at ``y`` when :math:`|k|` grows (ratio :math:`W(a_y+2)/W(a_y)`) and falls by 2 at
  ``h`` when :math:`|k|` shrinks (ratio :math:`W(a_h-2)/W(a_h)`); entering ``h = t`` from
  ``h != t`` multiplies by ½. Rejected: :math:`\theta_\nu \to -\theta_\nu`.

Why this samples P[k, l] × uniform θ: write :math:`R_\nu\theta` for θ with :math:`\theta_\nu`
reversed. The reverse of a ν-step taken with θ is a ν-step from y taken with :math:`R_\nu\theta`,
proposed with the same probability, so every step obeys *skew* detailed balance
:math:`\pi(s)\,T_{\nu,\theta}(s \to s') = \pi(s')\,T_{\nu,R_\nu\theta}(s' \to s)`; start, stop and l
updates do not depend on θ and obey ordinary detailed balance with θ-independent rejections. So the
probability flowing into (s, θ) is :math:`\tfrac14\pi(s)\sum_\nu [\sum_{s'} T_{\nu,R_\nu\theta}(s \to s')
+ \mathrm{Rej}_{\nu,R_\nu\theta}(s)] + \tfrac14\pi(s)\,p_{\rm other}(s) = \tfrac14\pi(s)`: the
bracket is the probability of proposing a ν-step at s at all (accepted, or rejected, which is
exactly the flip into θ), whatever the orientations (lifting: Turitsyn, Chertkov & Vucelja, Physica
D 240 (2011) 410; lifted worms: Elçi et al., arXiv:1711.05346). The exact free-field and
φ-representation tests in ``tests/physics`` check the result.

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
attempt form the chain watched on the closed sector, which is stationary with the target P[k, l]
(for the lifted chain too: it is the trace of a chain stationary with P × uniform θ); ending a
sweep instead at the first closed configuration after a fixed number of *proposals* picks a
state-dependent (length-biased) time and biases every measurement: with "worms until 2V proposals"
the 4×4 free field at η = 4.5, μ = 0 gave ⟨|φ|²⟩ = 0.3742(11) against the exact 0.3542, while fixed
attempts give 0.3534(9). Such *proposal-quota* sweeps (``run(..., proposal_quota=q)``) are only for
calibration from a cold start, where the worms grow by orders of magnitude while the density builds
up: their cost per sweep is bounded whatever the state, and nothing measured on them is used.

**Implementation.** State of a chain: ``links[x, j]`` (site-major: ``j`` = 0, 1 are
:math:`k_{x,t}, k_{x,x}` and 2, 3 are :math:`l_{x,t}, l_{x,x}`, the links from ``x`` to
``x + ν̂``), ``f[x]`` and the neighbour table ``nbr[x, 2ν + (s == -1)]`` = x + sν̂, sites flattened
as ``t·Nx + x``. Links and ``f`` are int16 while the weight table's :math:`f_{\max} - 4` fits (every
|k|, l and f is at most that, by the invariant below) and become int32 when the table grows
beyond; ``nbr`` is uint16 up to ``V = 2^16`` sites. The values and so the trajectories are the
same as with int32; the state of a 64×64 chain shrinks from 144 KiB to 72 KiB, which makes a sweep
5–10 % faster on 64×64 and 128×128. Everything a worm step touches at a site is in one place; the
recorded configurations are transposed to SPEC §1's ``(4, Nt, Nx)``. All ratios are products of
precomputed float64 tables (:math:`W(a\pm2)/W(a)`, :math:`e^{\pm\mu}`), so the hot loop has no
``exp``/``log``, no division and no allocation: a ratio ``num / den`` is accepted when
``u·den < num`` with a uniform ``u`` in [0, 1). Every chain has its own xoshiro256++ generator
(64-bit draws; the low bits choose the move, the top 53 bits give the uniform number), so a chain's
trajectory depends only on its seed, never on threads. The kernels never read beyond the weight
table: the invariant is :math:`f_x + c_x \le f_{\max} - 4` everywhere; a proposal that would break
it rewinds the generator to before the proposal and returns :data:`NEED_GROW`, Python grows the
table and resumes, so the trajectory does not depend on when the table grew. With ``debug=True``
the state is recomputed from scratch after every proposal (``f``, div k, l ≥ 0) and a mismatch
stops the run.

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
    "neighbour_table",
    "xoshiro_next",
]

# kernel return codes
OK = 0
NEED_GROW = 1
DEBUG_FAILED = 2

# fields of the per-chain state vector
_ST_HEAD, _ST_TAIL, _ST_DELTA, _ST_IN_WORM, _ST_THETA = 0, 1, 2, 3, 4  # theta: bit nu = theta_nu
_ST_PHASE, _ST_LINK, _ST_WCOUNT, _ST_SWEEPS = 5, 6, 7, 8
_N_STATE = 9
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

_NARROW_MAX = int(np.iinfo(np.int16).max)  # links and f are int16 while f_max - 4 fits
_N_LINK_VARS = 4  # k_t, k_x, l_t, l_x per site
_N_DIRS = 4  # +t, -t, +x, -x: nbr[x, 2 nu + (s == -1)]
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
def _state_consistent(links, f, nbr, head, tail, delta, in_worm):
    """Recompute f and div k from the links; compare with the incremental state."""
    n_sites = f.size
    for x in range(n_sites):
        ft = 0
        div = 0
        for nu in range(2):
            xb = nbr[x * _N_DIRS + 2 * nu + 1]
            if links[x * _N_LINK_VARS + 2 + nu] < 0:
                return False
            ft += (
                abs(links[x * _N_LINK_VARS + nu])
                + abs(links[xb * _N_LINK_VARS + nu])
                + 2 * (links[x * _N_LINK_VARS + 2 + nu] + links[xb * _N_LINK_VARS + 2 + nu])
            )
            div += links[x * _N_LINK_VARS + nu] - links[xb * _N_LINK_VARS + nu]
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
):
    """Run one chain until ``st[_ST_SWEEPS] == n_sweeps`` sweeps; see the module docstring.

    A sweep ends after ``worms_per_sweep`` worm attempts, or, if ``proposal_quota > 0``, at the
    first closed configuration after ``proposal_quota`` worm proposals. The configuration after
    sweep ``i`` (1-based) is recorded when ``i >= record_first`` and ``(i - record_first) %
    record_every == 0`` (``record_every > 0``).
    """
    n_sites = f.size
    n_links = 2 * n_sites
    inv_amp = 1.0 / amp
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    head, tail, delta, in_worm = st[_ST_HEAD], st[_ST_TAIL], st[_ST_DELTA], st[_ST_IN_WORM]
    theta = st[_ST_THETA]
    phase, link, wcount, sweeps = st[_ST_PHASE], st[_ST_LINK], st[_ST_WCOUNT], st[_ST_SWEEPS]
    by_quota = proposal_quota > 0
    wquota = proposal_quota if by_quota else worms_per_sweep
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
                y = nbr[x * _N_DIRS + 2 * nu]
                r, t0, t1, t2, t3 = xoshiro_next(s0, s1, s2, s3)
                lv = np.int64(links[x * _N_LINK_VARS + 2 + nu])
                ka = np.int64(abs(links[x * _N_LINK_VARS + nu]))
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
                        links[x * _N_LINK_VARS + 2 + nu] = lv + 1
                        f[x] = fx + 2
                        f[y] = fy + 2
                        c_l_a += 1
                else:
                    s0, s1, s2, s3 = t0, t1, t2, t3
                    c_l_p += 1
                    if lv > 0:
                        ratio = down2[fx] * down2[fy] * np.float64((ka + lv) * lv)
                        if ratio >= 1.0 or u < ratio:
                            links[x * _N_LINK_VARS + 2 + nu] = lv - 1
                            f[x] = fx - 2
                            f[y] = fy - 2
                            c_l_a += 1
                link += 1
                if debug and not _state_consistent(links, f, nbr, head, tail, delta, in_worm):
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
                        if debug and not _state_consistent(
                            links, f, nbr, head, tail, delta, in_worm
                        ):
                            status = DEBUG_FAILED
                            break
                        continue
                    factor = 2.0
                # step: nu at random, orientation s = theta_nu (bit nu of theta; 0: +1, 1: -1)
                nu = (bits >> 1) & 1
                sb = (theta >> nu) & 1
                y = np.int64(nbr[head * _N_DIRS + 2 * nu + sb])
                # s = +1: link (h, nu) changes by +delta; s = -1: link (y, nu) by -delta
                # (branch-free: theta flips on every rejection, so a branch would mispredict)
                li = head + (y - head) * sb
                dk = delta - 2 * delta * sb
                k_old = np.int64(links[li * _N_LINK_VARS + nu])
                k_new = k_old + dk
                lv = np.int64(links[li * _N_LINK_VARS + 2 + nu])
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
                    links[li * _N_LINK_VARS + nu] = k_new
                    d = ak_new - ak_old
                    f[head] += d
                    f[y] += d
                    head = y
                    c_step_a += 1
                else:
                    theta ^= 1 << nu
            if debug and not _state_consistent(links, f, nbr, head, tail, delta, in_worm):
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
                n_sum += links[x * _N_LINK_VARS + 0]
                p2 += up2[f[x]]
                p4 += up4[f[x]]
            if measure_series:
                series[sweeps - 1, 0] = n_sum / n_sites
                series[sweeps - 1, 1] = p2 / n_sites
                series[sweeps - 1, 2] = p4 / n_sites
            if record:
                rec = (sweeps - record_first) // record_every
                for j in range(_N_LINK_VARS):
                    for x in range(n_sites):
                        records[rec, j, x] = links[x * _N_LINK_VARS + j]
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
    status,
):
    for c in prange(links.shape[0]):
        status[c] = _advance_chain(
            links[c],
            fs[c],
            nbr,
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
        )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def neighbour_table(lattice: Lattice) -> np.ndarray:
    """``nbr[x, 2ν + (s == -1)]`` = x + sν̂ (int32, ``(V, 4)``), sites flattened as ``t·Nx + x``.

    >>> neighbour_table(Lattice(3, 2))[1].tolist()  # site (t, x) = (0, 1): +t, -t, +x, -x
    [3, 5, 0, 0]
    """
    nt, nx = lattice.nt, lattice.nx
    idx = np.arange(nt * nx).reshape(nt, nx)
    table = np.empty((nt * nx, _N_DIRS), dtype=np.int32)
    for nu in range(2):
        table[:, 2 * nu] = np.roll(idx, -1, axis=nu).ravel()
        table[:, 2 * nu + 1] = np.roll(idx, 1, axis=nu).ravel()
    return table


@dataclass
class ChainRun:
    """Output of :meth:`WormChains.run`.

    Attributes:
        series: ``(C, n_sweeps, 3)`` float64 ``[n, phi2, phi4]`` after every sweep (or ``None``).
        configs: ``(C, R, 4, Nt, Nx)`` int32 recorded configurations.
        observables: ``(C, R, 3)`` ``[n, phi2, phi4]`` of the recorded configurations, as the
            kernel measured them (from its incremental ``f``).
    """

    series: np.ndarray | None
    configs: np.ndarray
    observables: np.ndarray


class WormChains:
    """Independent lifted-worm Markov chains for one ``(params, lattice)``, run in parallel.

    Chain ``c`` draws from xoshiro256++ seeded by ``SeedSequence(seed).spawn(n_chains)[c]``, so
    results are identical for any number of threads. Chains start from the empty configuration
    (all ``k = l = 0``) with orientations θ = (+1, +1).

    Args:
        params, lattice: validated before anything else.
        seed: non-negative integer (or a ``numpy.random.SeedSequence``).
        n_chains: number of independent chains (not tied to the number of threads).
        table: a :class:`WeightTable` for ``(params.eta, params.lam)``; grows on demand.
        amplitude: the worm amplitude ``A > 0`` (1 by default; any value samples the same P[k, l]).
        worms_per_sweep: worm attempts per sweep; by default ``V/4`` until :meth:`calibrate`.
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
        # narrow integers (module docstring, "Implementation"): same values, half the memory
        self._nbr = neighbour_table(lattice).astype(np.uint16 if volume <= 2**16 else np.int32)
        self._lemire_threshold = np.uint64((2**32 - volume) % volume)
        mu = float(params.mu)
        # mu_fac[nu, (s Delta < 0)] = e^{mu s Delta delta_{nu,t}}
        self._mu_fac = np.array([[np.exp(mu), np.exp(-mu)], [1.0, 1.0]])
        # int16 until _refresh_tables() finds a table too large for it
        self._links = np.zeros((self.n_chains, volume, _N_LINK_VARS), dtype=np.int16)
        self._f = np.zeros((self.n_chains, volume), dtype=np.int16)
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
        if self.table.f_max - 4 > _NARROW_MAX and self._f.dtype != np.int32:
            # values up to f_max - 4 may not fit in int16 (a large table, given or grown): widen
            self._links = self._links.astype(np.int32)
            self._f = self._f.astype(np.int32)
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
        """Current configurations, ``(C, 4, Nt, Nx)`` int32 (a copy)."""
        cfg = np.ascontiguousarray(self._links.transpose(0, 2, 1), dtype=np.int32)
        return cfg.reshape(self.n_chains, _N_LINK_VARS, *self.lattice.shape)

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
        """Run ``n_sweeps`` proposal-quota sweeps and set ``worms_per_sweep`` from them.

        Each sweep has worm attempts until at least ``4V`` worm proposals are made and the worm is
        closed (so a sweep costs about the same in any state, even far from equilibrium). The new
        value is ``round(4V / m)``, clipped to ``[1, 4V]``, where ``m`` is the mean number of worm
        proposals per worm attempt in these sweeps (all chains together), so that one sweep has
        about ``4V`` worm proposals on average (twice the number of links: the worm moves all the
        flux, and the cost per independent sample is flat near this balance on 16×16 and 32×32).
        Deterministic for a given seed.
        """
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
        """Advance every chain by ``n_sweeps`` sweeps.

        Args:
            n_sweeps: sweeps per chain (>= 0).
            record_every: if > 0, store the configuration after sweeps ``record_first``,
                ``record_first + record_every``, ... (counted from 1 in this run).
            record_first: first recorded sweep (>= 1; default ``record_every``).
            series: measure ``[n, phi2, phi4]`` after every sweep.
            proposal_quota: if given (>= 1), end each sweep at the first closed configuration after
                this many worm proposals instead of after ``worms_per_sweep`` attempts (biased:
                calibration and thermalisation only, see the module docstring).
        """
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
        ser = np.zeros((self.n_chains, n_sweeps if series else 0, 3))
        records = np.zeros((self.n_chains, n_rec, _N_LINK_VARS, volume), dtype=np.int32)
        rec_obs = np.zeros((self.n_chains, n_rec, 3))
        status = np.zeros(self.n_chains, dtype=np.int64)
        self._state[:, _ST_SWEEPS] = 0
        while True:
            self._refresh_tables()
            _advance_chains(
                self._links.reshape(self.n_chains, -1),  # flat views: x * 4 + j
                self._f,
                self._nbr.reshape(-1),
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
            configs=records.reshape(self.n_chains, n_rec, _N_LINK_VARS, *shape),
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
