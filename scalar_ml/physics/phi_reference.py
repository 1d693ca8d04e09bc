r"""Reference Monte Carlo in the original field representation, with phase reweighting (numba).

**A validation tool for small lattices only.** It samples the complex field :math:`\phi_x` of
SPEC §2 directly and shares no code with the dual worm sampler (:mod:`.worm`, :mod:`.weights`,
:mod:`.observables`) except the parameter objects, so that it can referee the interacting dual
sampler. At :math:`\mu \ne 0` the action is complex and the average phase falls like
:math:`e^{-V\Delta f}` (:math:`\Delta f`: free-energy density difference between the full and the
phase-quenched theory), so the cost grows exponentially with the volume. Average phase
:math:`\langle\cos S_I\rangle_R` measured with this code at η = 4.01, λ = 1: 0.80 (4×4, μ = 0.5),
0.50 (4×4, μ = 0.91), 0.45 (4×4, μ = 1.0), 0.39 (4×4, μ = 1.3), 0.38 (4×4, μ = 1.5), 0.60 (4×2,
μ = 1.3), 0.53 (8×4, μ = 0.5), 0.26 (16×4, μ = 0.5), 0.10 (8×4, μ = 0.91); at η = 4.25, λ = 1:
0.45 (4×4, μ = 1.0), 0.37 (4×4, μ = 1.5). On 60×4 it is already compatible with 0 at μ = 0.5, so
the SPEC's 60×4 table cannot be checked this way; μ = 0 (no sign problem) can, on any lattice. For
``Nt = 2`` the phase is exactly 1: :math:`x + \hat t = x - \hat t`, so the two terms of
:math:`T_I` on each temporal pair cancel and :math:`S_I \equiv 0`.

Action and its real and imaginary parts
---------------------------------------
SPEC §2, with :math:`\hat t` the temporal and :math:`\hat x` the spatial unit vector:

.. math::

    S = \sum_x \Big[\eta|\phi_x|^2 + \lambda|\phi_x|^4
        - \sum_\nu \big(e^{\mu\delta_{\nu,t}}\phi^*_x\phi_{x+\hat\nu}
                        + e^{-\mu\delta_{\nu,t}}\phi^*_x\phi_{x-\hat\nu}\big)\Big].

Shifting :math:`x \to x + \hat\nu` in the second hopping term, the hopping part is
:math:`-\sum_{x,\nu}(e^{\mu\delta_{\nu,t}} a_{x,\nu} + e^{-\mu\delta_{\nu,t}} a^*_{x,\nu})` with
the link variable :math:`a_{x,\nu} = \phi^*_x\phi_{x+\hat\nu}`. Since
:math:`e^{\mu}a + e^{-\mu}a^* = 2\cosh\mu\,\mathrm{Re}\,a + 2i\sinh\mu\,\mathrm{Im}\,a`,
:math:`S = S_R + i S_I` with

.. math::

    S_R &= \sum_x \Big[\eta|\phi_x|^2 + \lambda|\phi_x|^4
           - 2\cosh\mu\,\mathrm{Re}(\phi^*_x\phi_{x+\hat t})
           - 2\,\mathrm{Re}(\phi^*_x\phi_{x+\hat x})\Big], \\
    S_I &= -2\sinh\mu \sum_x \mathrm{Im}(\phi^*_x\phi_{x+\hat t}) = -2\sinh\mu\,T_I,
    \qquad T_I = \sum_x \mathrm{Im}\,a_{x,t},\ T_R = \sum_x \mathrm{Re}\,a_{x,t}.

Only the temporal hopping carries an imaginary part, and only through :math:`\sinh\mu`; at μ = 0
the action is real. The measure is :math:`\prod_x d\,\mathrm{Re}\phi_x\, d\,\mathrm{Im}\phi_x`
(the dual weights :math:`W(f) = \int r^{f+1}\dots dr` come from the same measure in polar form).

Sampling and reweighting
------------------------
The chain samples :math:`P_R \propto e^{-S_R}` (the phase-quenched theory) by local Metropolis:
visit the sites in lexicographic order and, ``hits`` times per site, propose
:math:`\phi'_x = \phi_x + \delta(u_1 + i u_2)` with :math:`u_{1,2}` uniform in :math:`[-1, 1]`,
accepted with :math:`\min(1, e^{-\Delta S_R})`, where

.. math::

    \Delta S_R = \eta(|\phi'_x|^2 - |\phi_x|^2) + \lambda(|\phi'_x|^4 - |\phi_x|^4)
      - 2\,\mathrm{Re}\big[(\phi'_x - \phi_x)^* B_x\big], \quad
      B_x = \cosh\mu\,(\phi_{x+\hat t} + \phi_{x-\hat t}) + \phi_{x+\hat x} + \phi_{x-\hat x}

(for an extent of 2, :math:`x + \hat\nu = x - \hat\nu` and the neighbour counts twice, as it does
in the action and in the dual representation: two distinct links). On a ``d``-dimensional lattice
(SPEC §3, time first) the spatial terms run over the ``d − 1`` space directions :math:`\hat\imath`:
:math:`S_R` has :math:`-2\sum_{i \ge 1}\mathrm{Re}(\phi^*_x\phi_{x+\hat\imath})` and
:math:`B_x = \cosh\mu\,(\phi_{x+\hat t} + \phi_{x-\hat t}) + \sum_{i \ge 1}
(\phi_{x+\hat\imath} + \phi_{x-\hat\imath})`; :math:`S_I`, the observables and the reweighting
are unchanged (only time carries μ). The step δ is tuned during
thermalisation towards 50 % acceptance and then frozen. Expectation values of the full theory are

.. math::

    \langle O\rangle = \frac{\langle O\,e^{-iS_I}\rangle_R}{\langle e^{-iS_I}\rangle_R}.

Charge conjugation :math:`\phi \to \phi^*` leaves the measure and :math:`S_R` invariant and flips
:math:`S_I \to -S_I`; both observables below satisfy :math:`O(\phi^*) = O(\phi)^*`. Hence
:math:`\langle O e^{-iS_I}\rangle_R` is real, and its real part per configuration,
:math:`\mathrm{Re}(O e^{-iS_I}) = \mathrm{Re}\,O\cos S_I + \mathrm{Im}\,O\sin S_I`, is an unbiased
estimator (the average of the configuration and its C-image); likewise :math:`\cos S_I` for the
phase. :math:`\langle\sin S_I\rangle_R = 0` is kept as a diagnostic.

Observables (SPEC §2, per configuration)
----------------------------------------
* :math:`|\phi|^2 = \frac1V\sum_x|\phi_x|^2 = -\frac1V\partial_\eta \ln Z` (real, C-even).
* :math:`n = \frac1V\partial_\mu \ln Z = \frac1V\langle -\partial_\mu S\rangle` with

  .. math::

      -\partial_\mu S = \sum_x\big(e^{\mu}\phi^*_x\phi_{x+\hat t}
          - e^{-\mu}\phi^*_x\phi_{x-\hat t}\big)
        = \sum_x\big(e^{\mu}a_{x,t} - e^{-\mu}a^*_{x,t}\big)
        = 2\sinh\mu\,T_R + 2i\cosh\mu\,T_I ,

  so :math:`n_\phi = (2\sinh\mu\,T_R + 2i\cosh\mu\,T_I)/V` is complex per configuration, and the
  reweighted numerator is :math:`\mathrm{Re}(n_\phi e^{-iS_I})
  = (2\sinh\mu\,T_R\cos S_I + 2\cosh\mu\,T_I\sin S_I)/V`. This is the same
  :math:`\frac1V\partial_\mu\ln Z` as the dual :math:`n = \frac1V\sum_x k_{x,t}`, so the two must
  agree including the sign. (At μ = 0 the numerator vanishes identically: ⟨n⟩ = 0 exactly.)

Errors
------
:func:`reweighted_mean` estimates :math:`R = \bar A/\bar B` (A the numerator series, B the phase)
and its error with Wolff's linearisation: the projected series
:math:`y_i = (A_i - R B_i)/\bar B` carries the fluctuations of R to first order, and its
autocorrelation-aware error and :math:`\tau_{\rm int}` come from :func:`.autocorr.autocorrelation`
over the independent chains.

>>> from scalar_ml.physics.params import Lattice, PhysicsParams
>>> ref = sample_phi_reference(PhysicsParams(4.5, 0.0, 0.3), Lattice(2, 2), 200, seed=3, n_chains=2)
>>> ref.phase.shape, ref.numerators["n"].shape, bool(np.all(np.abs(ref.phase) <= 1.0))
((2, 200), (2, 200), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from scalar_ml.physics.autocorr import AutocorrResult, autocorrelation
from scalar_ml.physics.params import Lattice, PhysicsParams, validate_point

__all__ = ["PhiReferenceRun", "reweighted_mean", "sample_phi_reference"]

_TARGET_ACCEPTANCE = 0.5
_ADAPT_EVERY = 50  # sweeps between step-size adjustments during thermalisation
_N_SERIES = 5  # per measurement: cos S_I, sin S_I, |phi|^2, T_R, T_I


@njit(cache=True)
def _local_delta_s_r(phi_re, phi_im, x, new_re, new_im, eta, lam, cosh_mu, nb):
    """:math:`S_R(\\phi') - S_R(\\phi)` for a change of the field at site ``x`` only."""
    t_fwd, t_bwd = nb[0, x], nb[1, x]
    b_re = cosh_mu * (phi_re[t_fwd] + phi_re[t_bwd])
    b_im = cosh_mu * (phi_im[t_fwd] + phi_im[t_bwd])
    for j in range(2, nb.shape[0]):  # the spatial neighbours, x + i and x - i for i = 1 .. d-1
        b_re += phi_re[nb[j, x]]
        b_im += phi_im[nb[j, x]]
    old2 = phi_re[x] * phi_re[x] + phi_im[x] * phi_im[x]
    new2 = new_re * new_re + new_im * new_im
    d_re = new_re - phi_re[x]
    d_im = new_im - phi_im[x]
    # Re[(phi' - phi)^* B] = d_re b_re + d_im b_im
    return (
        eta * (new2 - old2) + lam * (new2 * new2 - old2 * old2) - 2.0 * (d_re * b_re + d_im * b_im)
    )


@njit(cache=True)
def _measure(phi_re, phi_im, nb, sinh_mu, out):
    """Fill ``out`` with ``[cos S_I, sin S_I, |phi|^2, T_R, T_I]`` of the current field."""
    n_sites = phi_re.size
    t_r = 0.0
    t_i = 0.0
    phi2 = 0.0
    for x in range(n_sites):
        y = nb[0, x]
        # a = phi_x^* phi_{x+t}
        t_r += phi_re[x] * phi_re[y] + phi_im[x] * phi_im[y]
        t_i += phi_re[x] * phi_im[y] - phi_im[x] * phi_re[y]
        phi2 += phi_re[x] * phi_re[x] + phi_im[x] * phi_im[x]
    s_i = -2.0 * sinh_mu * t_i
    out[0] = math.cos(s_i)
    out[1] = math.sin(s_i)
    out[2] = phi2 / n_sites
    out[3] = t_r
    out[4] = t_i


@njit(cache=True)
def _run_chain(
    phi_re, phi_im, nb, eta, lam, cosh_mu, sinh_mu, step, hits, n_therm, n_meas, every, rng
):
    """Thermalise (adapting the step), then record ``n_meas`` measurements ``every`` sweeps.

    Returns ``(series (n_meas, 5), final step, production acceptance)``; all random numbers come
    from the chain's own ``numpy.random.Generator`` ``rng``, so a chain is a deterministic function
    of its arguments.
    """
    n_sites = phi_re.size
    series = np.empty((n_meas, _N_SERIES))
    accepted = 0
    proposed = 0
    n_sweeps = n_therm + n_meas * every
    for sweep in range(n_sweeps):
        if sweep == n_therm:
            accepted = 0
            proposed = 0
        for x in range(n_sites):
            for _ in range(hits):
                new_re = phi_re[x] + step * (2.0 * rng.random() - 1.0)
                new_im = phi_im[x] + step * (2.0 * rng.random() - 1.0)
                d_s = _local_delta_s_r(phi_re, phi_im, x, new_re, new_im, eta, lam, cosh_mu, nb)
                proposed += 1
                if d_s <= 0.0 or rng.random() < math.exp(-d_s):
                    phi_re[x] = new_re
                    phi_im[x] = new_im
                    accepted += 1
        if sweep < n_therm and (sweep + 1) % _ADAPT_EVERY == 0:
            rate = accepted / proposed
            # multiplicative adjustment, bounded so that one bad window cannot wreck the step
            step *= min(2.0, max(0.5, math.exp(rate - _TARGET_ACCEPTANCE) ** 2))
            accepted = 0
            proposed = 0
        if sweep >= n_therm and (sweep - n_therm + 1) % every == 0:
            _measure(phi_re, phi_im, nb, sinh_mu, series[(sweep - n_therm) // every])
    rate = accepted / proposed if proposed > 0 else math.nan
    return series, step, rate


def _neighbours(lattice: Lattice) -> np.ndarray:
    """``(2d, V)`` site indices ``[x+0̂, x−0̂, x+1̂, x−1̂, …]`` (in 2D ``[x+t, x-t, x+x, x-x]``)
    for sites numbered in row-major order of ``lattice.shape`` (2D: ``x = t·Nx + x_space``)."""
    idx = np.arange(lattice.volume).reshape(lattice.shape)
    rows = []
    for axis in range(lattice.dims):
        rows += [np.roll(idx, -1, axis=axis).ravel(), np.roll(idx, 1, axis=axis).ravel()]
    return np.stack(rows).astype(np.int64)


@dataclass
class PhiReferenceRun:
    """Per-measurement series of :func:`sample_phi_reference`, shape ``(n_chains, n_meas)`` each.

    Attributes:
        phase: :math:`\\cos S_I` (the real part of the reweighting factor :math:`e^{-iS_I}`).
        phase_sin: :math:`\\sin S_I` (diagnostic: its mean must vanish by charge conjugation).
        numerators: ``{"phi2": |φ|² cos S_I, "n": Re(n_φ e^{-iS_I})}``, the reweighted numerators.
        quenched: ``{"phi2": |φ|², "n": Re n_φ}``, the phase-quenched (unreweighted) values.
        meta: parameters, seed, run lengths, final step sizes and production acceptance rates.
    """

    phase: np.ndarray
    phase_sin: np.ndarray
    numerators: dict[str, np.ndarray]
    quenched: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def average_phase(self) -> AutocorrResult:
        """:math:`\\langle\\cos S_I\\rangle_R` with its autocorrelation-aware error."""
        return autocorrelation(self.phase)

    def observable(self, name: str) -> AutocorrResult:
        """Reweighted :math:`\\langle O\\rangle` for ``name`` in ``{"phi2", "n"}`` (see module)."""
        if name not in self.numerators:
            raise ValueError(f"unknown observable {name!r}; choose from {sorted(self.numerators)}")
        return reweighted_mean(self.numerators[name], self.phase)


def reweighted_mean(numerator: np.ndarray, phase: np.ndarray) -> AutocorrResult:
    """:math:`\\bar A / \\bar B` with Wolff's linearised, autocorrelation-aware error.

    Args:
        numerator: ``(n_chains, n_meas)`` series :math:`A_i` (e.g. :math:`\\mathrm{Re}(O e^{-iS_I})`).
        phase: matching series :math:`B_i` (e.g. :math:`\\cos S_I`); its mean must be > 0.

    Returns:
        an :class:`~.autocorr.AutocorrResult` whose ``mean`` is the ratio and whose ``err``,
        ``tau_int`` and ``window`` are those of the projected series
        :math:`y_i = (A_i - R B_i)/\\bar B`.

    >>> rng = np.random.default_rng(0)
    >>> b = np.ones((2, 1000)); a = 2.0 + rng.normal(size=(2, 1000))
    >>> res = reweighted_mean(a, b)
    >>> abs(res.mean - 2.0) < 4 * res.err, round(res.err, 3)
    (True, 0.022)
    """
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(phase, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"numerator and phase must be (n_chains, n_meas) arrays of one shape, "
            f"got {a.shape} and {b.shape}"
        )
    b_mean = float(b.mean())
    if not b_mean > 0.0:
        raise ValueError(f"the average phase must be > 0 for reweighting, got {b_mean}")
    ratio = float(a.mean()) / b_mean
    projected = autocorrelation((a - ratio * b) / b_mean)
    return AutocorrResult(
        mean=ratio,
        err=projected.err,
        tau_int=projected.tau_int,
        tau_int_err=projected.tau_int_err,
        window=projected.window,
        n=projected.n,
        n_chains=projected.n_chains,
        window_ok=projected.window_ok,
    )


def sample_phi_reference(
    params: PhysicsParams,
    lattice: Lattice,
    n_meas: int,
    *,
    seed: int,
    n_chains: int = 4,
    n_therm: int = 1000,
    sweeps_between: int = 1,
    hits: int = 2,
    step: float = 0.5,
) -> PhiReferenceRun:
    """Sample the phase-quenched weight :math:`e^{-S_R}` and record the reweighting series.

    Runs ``n_chains`` independent chains one after another (single-threaded), each seeded from
    ``SeedSequence(seed).spawn(n_chains)``, starting from :math:`\\phi = 0`: ``n_therm`` sweeps
    (step tuned towards 50 % acceptance), then ``n_meas`` measurements, one every
    ``sweeps_between`` sweeps. A sweep is ``hits`` Metropolis proposals on every site.
    Thermalisation is not checked automatically: ``n_therm`` must be many :math:`\tau_{\rm int}`
    (the reweighted observables' τ are 1–8 sweeps at the tested λ = 1 points, up to ~30 for a
    free field close to its critical point).

    Args:
        params: couplings (validated; λ = 0 needs :math:`\\eta - 2 - 2\\cosh\\mu > 0`, which is
            also what makes :math:`e^{-S_R}` normalisable then).
        lattice: the periodic lattice, ``nt × nx`` or d-dimensional (validated).
        n_meas: measurements per chain (>= 2).
        seed: non-negative integer; equal arguments give bit-identical runs.

    Returns:
        :class:`PhiReferenceRun`; use :meth:`PhiReferenceRun.observable` for
        ``<|φ|²>`` (``"phi2"``) and ``<n>`` (``"n"``) of the full theory.
    """
    validate_point(params, lattice)
    for name, value, minimum in (
        ("n_meas", n_meas, 2),
        ("seed", seed, 0),
        ("n_chains", n_chains, 1),
        ("n_therm", n_therm, 0),
        ("sweeps_between", sweeps_between, 1),
        ("hits", hits, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a finite number > 0, got {step!r}")

    nb = _neighbours(lattice)
    volume = lattice.volume
    cosh_mu, sinh_mu = math.cosh(params.mu), math.sinh(params.mu)
    seed_seqs = np.random.SeedSequence(seed).spawn(n_chains)
    series = np.empty((n_chains, n_meas, _N_SERIES))
    steps, rates = [], []
    for c, seed_seq in enumerate(seed_seqs):
        phi_re = np.zeros(volume)
        phi_im = np.zeros(volume)
        series[c], final_step, rate = _run_chain(
            phi_re,
            phi_im,
            nb,
            float(params.eta),
            float(params.lam),
            cosh_mu,
            sinh_mu,
            float(step),
            int(hits),
            int(n_therm),
            int(n_meas),
            int(sweeps_between),
            np.random.default_rng(seed_seq),
        )
        steps.append(float(final_step))
        rates.append(float(rate))

    cos_s, sin_s, phi2, t_r, t_i = (series[..., i] for i in range(_N_SERIES))
    n_re = 2.0 * sinh_mu * t_r / volume
    n_im = 2.0 * cosh_mu * t_i / volume
    meta = {
        "params": params.as_dict(),
        "lattice": lattice.as_dict(),
        "seed": int(seed),
        "n_chains": int(n_chains),
        "n_meas": int(n_meas),
        "n_therm": int(n_therm),
        "sweeps_between": int(sweeps_between),
        "hits": int(hits),
        "step": steps,
        "acceptance": rates,
    }
    return PhiReferenceRun(
        phase=cos_s,
        phase_sin=sin_s,
        numerators={"phi2": phi2 * cos_s, "n": n_re * cos_s + n_im * sin_s},
        quenched={"phi2": phi2, "n": n_re},
        meta=meta,
    )
