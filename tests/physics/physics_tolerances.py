"""Shared tolerances and helpers of the physics tests (the one place where they are set).

Imported by the test modules as ``from physics_tolerances import ...`` (the test directory is on
``sys.path`` under pytest's default import mode).
"""

from __future__ import annotations

import numpy as np

from scalar_ml.physics.autocorr import AutocorrResult, autocorrelation
from scalar_ml.physics.ensemble import Ensemble

#: Monte Carlo results must agree with exact values within this many standard deviations.
N_SIGMA = 4.0
#: Relative accuracy required of W(f) (and hence absolute accuracy of log W(f)).
W_RTOL = 1e-12
#: SPEC §3 quotes its interacting reference values with these errors (n, |phi|^2).
SPEC_REF_ERR = {"n": 0.003, "phi2": 0.001}


def chain_stats(ens: Ensemble, name: str) -> AutocorrResult:
    """Mean, autocorrelation-aware error and tau_int of one stored observable, chain by chain."""
    series = getattr(ens, name)
    parts = np.split(series, np.cumsum(ens.meta["chain_lengths"])[:-1])
    return autocorrelation([p for p in parts if p.size >= 2])


def assert_agrees(
    measured: AutocorrResult, exact: float, label: str, extra_err: float = 0.0
) -> None:
    """|measured - exact| <= N_SIGMA sigma, sigma^2 = (MC error)^2 + extra_err^2; sigma must be > 0."""
    sigma = float(np.hypot(measured.err, extra_err))
    assert sigma > 0, f"{label}: zero error estimate (no fluctuations?)"
    dev = (measured.mean - exact) / sigma
    assert abs(dev) <= N_SIGMA, (
        f"{label}: measured {measured.mean:.6f} ± {measured.err:.6f} (tau_int {measured.tau_int:.2f}),"
        f" expected {exact:.6f} (± {extra_err}): {dev:+.2f} sigma"
    )
