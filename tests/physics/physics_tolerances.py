r"""Shared tolerances, power requirements and negative controls of the physics tests (the one place).

Imported by the test modules as ``from physics_tolerances import ...`` (the test directory is on
``sys.path`` under pytest's default import mode).

**Agreement.** A Monte Carlo estimate :math:`m \pm \sigma_m` agrees with a reference
:math:`r \pm \sigma_r` when :math:`|m - r| \le N_\sigma\,\sigma` with
:math:`\sigma = \sqrt{\sigma_m^2 + \sigma_r^2}` and :math:`N_\sigma` = :data:`N_SIGMA` = 4. Errors
are autocorrelation-aware (Γ-method over independent chains, :mod:`scalar_ml.physics.autocorr`).

**Power.** A check that passes because its errors are large proves nothing, so every statistical
check states the largest relative error it accepts, ``max_rel_sigma``, and asserts
:math:`\sigma \le` ``max_rel_sigma`` :math:`\cdot |r|` *before* it compares. The default
:data:`MAX_REL_SIGMA` = 1 % / 8 = 0.125 % means: a bias of :data:`POWER_SHIFT` = 1 % of the
reference value moves the estimate by at least :data:`POWER_SIGMAS` = 8 σ. Checks that cannot
reach it at an affordable cost (⟨n⟩ where it is small, or where the reference itself carries a
quoted error, as the SPEC table does) state a larger ``max_rel_sigma`` next to the reason; their
resolvable shift is ``POWER_SIGMAS · max_rel_sigma``.

**Negative control.** Every check is run a second and a third time on *the same data* shifted by
:math:`\pm` ``POWER_SIGMAS · max_rel_sigma · |r|`` (an additive shift of every sample, i.e. a bias
of ±1 % of the reference for the default), and both must *fail* the agreement test. Because
``POWER_SIGMAS = 2 N_SIGMA``, this does not depend on the seed: data that pass have
:math:`|m - r| \le N_\sigma \sigma`, so after a shift of :math:`2 N_\sigma \sigma_{\max} \ge
2 N_\sigma \sigma` they are at least :math:`N_\sigma \sigma` off (the borderline equality has
probability zero). What the control adds is that the numbers it is given are the numbers the
check uses: a check that compared the wrong series, or whose tolerance was inflated somewhere,
would let the shifted data through. For the same reason, a real 1 % bias typically fails a default
check at about 9 σ (the measured σ is about 0.85 of the bound), and one that would otherwise
pass at 4 σ or more.

**How many samples.** The error of a mean over ``N`` stored configurations is
:math:`\sigma = a/\sqrt N` with :math:`a^2 = 2\tau_{\rm int}\,\mathrm{Var}(O)` of the stored
series (τ_int ≈ 0.6 there: ``generate_ensemble`` stores a configuration every
:math:`2(\tau_{\rm int} + \delta\tau_{\rm int})` sweeps), so the statistics a check needs is
:math:`N = (a/(\texttt{max\_rel\_sigma}\,|r|))^2`. ``benchmarks/power_sizing.py`` measures ``a``
and the CPU cost per configuration (and per reference measurement) for every point and prints the
cheapest sizes that reach the stated power with a 15 % margin; the sizes in the tests come from it.
When the sampler changes, the *number* of configurations needed does not (``a`` depends on the
physics and on τ of the stored series only); the *cost* does.

**Injected bias (a test-only demonstration).** ``pytest --inject-bias=phi2:+0.01`` (root
``tests/conftest.py``) multiplies ⟨|φ|²⟩ of every ensemble that ``generate_ensemble`` returns in
the test process by 1.01; ``--inject-bias=phi2:+0.01@4.01,1.5`` only at (η, μ) = (4.01, 1.5).
The suite must then fail, and the failing checks report by how many σ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from scalar_ml.physics.autocorr import AutocorrResult, autocorrelation
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.params import Lattice

#: Monte Carlo results must agree with exact values within this many standard deviations.
N_SIGMA = 4.0
#: The relative bias of a reference value that a default check must resolve ...
POWER_SHIFT = 0.01
#: ... at this many standard deviations (2 N_SIGMA: the negative control cannot pass by chance).
POWER_SIGMAS = 2.0 * N_SIGMA
#: Default largest relative error of a check: 1 % / 8 = 0.125 %.
MAX_REL_SIGMA = POWER_SHIFT / POWER_SIGMAS
#: Relative accuracy required of W(f) (and hence absolute accuracy of log W(f)).
W_RTOL = 1e-12
#: SPEC §3 quotes its interacting reference values with these errors (n, |phi|^2).
SPEC_REF_ERR = {"n": 0.003, "phi2": 0.001}

#: Data with an additive offset applied to every sample -> their mean and error.
Shifted = Callable[[float], AutocorrResult]


def chain_stats(ens: Ensemble, name: str, offset: float = 0.0) -> AutocorrResult:
    """Mean, autocorrelation-aware error and tau_int of one stored observable, chain by chain.

    ``offset`` is added to every sample (the negative controls' shifted copies of the data).
    """
    series = getattr(ens, name) + offset
    parts = np.split(series, np.cumsum(ens.meta["chain_lengths"])[:-1])
    return autocorrelation([p for p in parts if p.size >= 2])


def _deviation(measured: AutocorrResult, expected: float, expected_err: float) -> float:
    sigma = float(np.hypot(measured.err, expected_err))
    return (measured.mean - expected) / sigma


def check_mc(
    data: Shifted,
    expected: float,
    label: str,
    expected_err: float = 0.0,
    *,
    max_rel_sigma: float = MAX_REL_SIGMA,
    max_sigma: float | None = None,
) -> None:
    """Power, agreement and negative control of one Monte Carlo estimate (module docstring).

    Args:
        data: the estimate as a function of an additive offset of every sample
            (``mc_helpers.DualSeries.data``); ``data(0.0)`` is the real measurement.
        expected: reference value; ``expected_err`` its own error (0 for exact values).
        label: names the check in messages.
        max_rel_sigma: largest accepted combined error relative to ``|expected|``.
        max_sigma: largest accepted combined error in absolute terms; use it (instead of
            ``max_rel_sigma``) where the reference value is 0.

    Raises:
        AssertionError: the check lacks its power, disagrees, or its negative control passes.
    """
    bound = max_sigma if max_sigma is not None else max_rel_sigma * abs(expected)
    shift = POWER_SIGMAS * bound
    measured = data(0.0)
    sigma = float(np.hypot(measured.err, expected_err))
    what = (
        f"{label}: measured {measured.mean:.6f} ± {measured.err:.6f} (tau_int "
        f"{measured.tau_int:.2f}), expected {expected:.6f} ± {expected_err:.6f}"
    )
    assert sigma > 0, f"{what}: zero error estimate (no fluctuations?)"
    relative = f" = {bound / abs(expected):.3%} of the reference" if expected else ""
    assert sigma <= bound, (
        f"{what}: sigma {sigma:.3g} exceeds the stated maximum {bound:.3g}{relative}; the check "
        f"would not resolve a shift of {shift:.3g} at {POWER_SIGMAS:.0f} sigma (more statistics; "
        "sizes: benchmarks/power_sizing.py)"
    )
    dev = _deviation(measured, expected, expected_err)
    assert abs(dev) <= N_SIGMA, f"{what}: {dev:+.2f} sigma (|dev| > {N_SIGMA:.0f})"
    for sign in (1.0, -1.0):
        shifted = data(sign * shift)
        dev_shifted = _deviation(shifted, expected, expected_err)
        assert abs(dev_shifted) > N_SIGMA, (
            f"{label}: negative control failed: the same data shifted by {sign * shift:+.3g} "
            f"pass the check ({dev_shifted:+.2f} sigma)"
        )


def assert_agrees(
    measured: AutocorrResult,
    exact: float,
    label: str,
    extra_err: float = 0.0,
    *,
    max_rel_sigma: float = MAX_REL_SIGMA,
    max_sigma: float | None = None,
) -> None:
    """:func:`check_mc` for an estimate whose samples are not at hand (shifts its mean instead).

    Shifting the mean by ``s`` is what shifting every sample by ``s`` does to it, with the error
    unchanged; use it for the φ-reference's reweighted ratios checked against exact values.
    """

    def shifted(offset: float) -> AutocorrResult:
        return dataclasses.replace(measured, mean=measured.mean + offset)

    check_mc(shifted, exact, label, extra_err, max_rel_sigma=max_rel_sigma, max_sigma=max_sigma)


@dataclass(frozen=True)
class McPoint:
    """One point of a statistical physics check: couplings, lattice, statistics, stated power.

    ``n_configs`` dual configurations from ``n_chains`` chains (fewer chains thermalise fewer
    times: cheaper where τ_int is long); ``n_ref`` φ-reference measurements per chain (0 where the
    reference is exact). ``phi2_rel_sigma`` and ``n_rel_sigma`` are the ``max_rel_sigma`` of the
    two observables' checks; ``n_abs_sigma`` replaces ``n_rel_sigma`` where ⟨n⟩ = 0 (μ = 0).
    ``benchmarks/power_sizing.py`` sizes ``n_configs`` and ``n_ref`` for them. ``extra_space``
    holds the extents of further space directions: the lattice is ``nt × nx × extra_space``
    (``McPoint(6.5, 0, 0.4, 6, 4, 3000, extra_space=(4,))`` is on 6×4×4).
    """

    eta: float
    lam: float
    mu: float
    nt: int
    nx: int
    n_configs: int
    n_ref: int = 0
    phi2_rel_sigma: float = MAX_REL_SIGMA
    n_rel_sigma: float = MAX_REL_SIGMA
    n_abs_sigma: float | None = None
    n_chains: int = 8
    extra_space: tuple[int, ...] = ()

    @property
    def lattice(self) -> Lattice:
        """The lattice ``nt × nx × extra_space`` (time first)."""
        return Lattice(self.nt, self.nx, *self.extra_space)

    def power(self, name: str) -> dict[str, float | None]:
        """Keyword arguments of :func:`check_mc` for the observable ``name``."""
        if name == "phi2":
            return {"max_rel_sigma": self.phi2_rel_sigma}
        if name == "n":
            return {"max_rel_sigma": self.n_rel_sigma, "max_sigma": self.n_abs_sigma}
        raise ValueError(f"unknown observable {name!r}")

    @property
    def id(self) -> str:
        return f"{self.lattice}-eta{self.eta}-lam{self.lam}-mu{self.mu}"


#: Marks of table rows that only the ``ci`` selection runs (``pytest -m "slow and ci"``).
CI_ONLY = (pytest.mark.slow, pytest.mark.ci)


def ci_only(point: McPoint) -> Any:
    """A table row for ``pytest.mark.parametrize`` that runs in the ``ci`` selection only."""
    return pytest.param(point, marks=CI_ONLY, id=point.id)


def table_points(table: list[Any]) -> list[McPoint]:
    """The points of a parametrize table (rows may be :func:`ci_only` parameter sets)."""
    return [row.values[0] if hasattr(row, "values") else row for row in table]
