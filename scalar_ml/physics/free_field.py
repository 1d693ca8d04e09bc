r"""Exact free-field (:math:`\lambda = 0`) expectation values on a finite lattice (SPEC §3).

At :math:`\lambda = 0` the action is the quadratic form :math:`\phi^* M \phi`, diagonal in momentum
space, :math:`p_\nu = 2\pi j / N_\nu`:

.. math::

    M(p) = \eta - 2\cos p_x - (e^{\mu} e^{i p_t} + e^{-\mu} e^{-i p_t}),

so :math:`\ln Z = -\sum_p \ln M(p)` + const and

.. math::

    \langle|\phi|^2\rangle = \frac1V \sum_p \frac{1}{M(p)}, \qquad
    \langle n\rangle = \frac1V \frac{\partial \ln Z}{\partial\mu}
      = \frac1V \sum_p \frac{e^{\mu} e^{i p_t} - e^{-\mu} e^{-i p_t}}{M(p)}

(real parts; the imaginary parts cancel between :math:`p` and :math:`-p`). The Gaussian integral
exists only while the lowest mode :math:`M(0) = \eta - 2 - 2\cosh\mu` is positive.

>>> n, phi2 = free_field_observables(4.5, 0.3, nt=8, nx=8)
>>> print(f"{phi2:.6f} {n:.6f}")
0.321051 0.006530
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["free_field_observables"]


def free_field_observables(eta: float, mu: float, nt: int, nx: int) -> tuple[float, float]:
    """Exact :math:`(\\langle n\\rangle, \\langle|\\phi|^2\\rangle)` of the free theory on ``nt × nx``.

    Raises:
        ValueError: ``nt``/``nx`` not integers >= 2, non-finite couplings, or
            :math:`\\eta - 2 - 2\\cosh\\mu \\le 0` (the free theory does not exist).
    """
    for name, value in (("nt", nt), ("nx", nx)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    for name, value in (("eta", eta), ("mu", mu)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise ValueError(f"{name} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {name} = {value}")
    gap = eta - 2.0 - 2.0 * math.cosh(mu)
    if gap <= 0:
        raise ValueError(
            f"the free theory does not exist at eta = {eta}, mu = {mu}: "
            f"it needs eta - 2 - 2 cosh(mu) > 0, got {gap:.6g}"
        )
    p_t = 2.0 * np.pi * np.arange(nt) / nt
    p_x = 2.0 * np.pi * np.arange(nx) / nx
    fwd = np.exp(mu + 1j * p_t)[:, None]  # e^{mu} e^{i p_t}
    bwd = np.exp(-mu - 1j * p_t)[:, None]
    m = eta - 2.0 * np.cos(p_x)[None, :] - (fwd + bwd)
    volume = nt * nx
    phi2 = float(np.sum(1.0 / m).real) / volume
    n = float(np.sum((fwd - bwd) / m).real) / volume
    return n, phi2
