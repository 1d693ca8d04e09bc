r"""Exact free-field (:math:`\lambda = 0`) expectation values on a finite lattice (SPEC §3).

At :math:`\lambda = 0` the action is the quadratic form :math:`\phi^* M \phi`, diagonal in momentum
space. On an ``N_0 × … × N_{d-1}`` lattice (time first, :math:`p_\nu = 2\pi j / N_\nu`)

.. math::

    M(p) = \eta - 2\sum_{i \ge 1} \cos p_i - (e^{\mu} e^{i p_0} + e^{-\mu} e^{-i p_0}),

(in 2D: :math:`\eta - 2\cos p_x - \dots`), so :math:`\ln Z = -\sum_p \ln M(p)` + const and

.. math::

    \langle|\phi|^2\rangle = \frac1V \sum_p \frac{1}{M(p)}, \qquad
    \langle n\rangle = \frac1V \frac{\partial \ln Z}{\partial\mu}
      = \frac1V \sum_p \frac{e^{\mu} e^{i p_0} - e^{-\mu} e^{-i p_0}}{M(p)}

(real parts; the imaginary parts cancel between :math:`p` and :math:`-p`). The Gaussian integral
exists only while the lowest mode :math:`M(0) = \eta - 2(d-1) - 2\cosh\mu` is positive.

>>> n, phi2 = free_field_observables(4.5, 0.3, nt=8, nx=8)
>>> print(f"{phi2:.6f} {n:.6f}")
0.321051 0.006530
>>> n, phi2 = free_field_observables(8.5, 0.6, shape=(4, 4, 4, 4))   # SPEC §3, 4⁴
>>> print(f"{phi2:.6f} {n:.6f}")
0.165131 0.040277
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scalar_ml.physics.params import DIMENSIONS

__all__ = ["free_field_observables"]


def free_field_observables(
    eta: float,
    mu: float,
    nt: int | None = None,
    nx: int | None = None,
    *,
    shape: Sequence[int] | None = None,
) -> tuple[float, float]:
    """Exact :math:`(\\langle n\\rangle, \\langle|\\phi|^2\\rangle)` of the free theory.

    The lattice is ``nt × nx`` (2D) or ``shape = (N_0, …, N_{d-1})`` (time first, d = 2, 3, 4).

    Raises:
        ValueError: extents not integers >= 2, not exactly one of ``(nt, nx)`` and ``shape``,
            non-finite couplings, or :math:`\\eta - 2(d-1) - 2\\cosh\\mu \\le 0` (the free theory
            does not exist).
    """
    if shape is None:
        if nt is None or nx is None:
            raise ValueError("give the lattice as nt and nx, or as shape")
        extents = (("nt", nt), ("nx", nx))
    else:
        if nt is not None or nx is not None:
            raise ValueError("give the lattice as nt and nx, or as shape, not both")
        if isinstance(shape, str) or not isinstance(shape, Sequence):
            raise ValueError(f"shape must be a sequence of extents, got {shape!r}")
        if len(shape) not in DIMENSIONS:
            raise ValueError(f"shape must have {DIMENSIONS} extents, got {tuple(shape)!r}")
        extents = tuple((f"shape[{i}]", n) for i, n in enumerate(shape))
    for name, value in extents:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    for name, value in (("eta", eta), ("mu", mu)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise ValueError(f"{name} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {name} = {value}")
    sizes = [int(n) for _, n in extents]
    dims = len(sizes)
    gap = eta - 2.0 * (dims - 1) - 2.0 * math.cosh(mu)
    if gap <= 0:
        where = "" if dims == 2 else f" in {dims} dimensions"
        raise ValueError(
            f"the free theory does not exist at eta = {eta}, mu = {mu}{where}: "
            f"it needs eta - {2 * (dims - 1)} - 2 cosh(mu) > 0, got {gap:.6g}"
        )
    p_t = 2.0 * np.pi * np.arange(sizes[0]) / sizes[0]
    time = (slice(None),) + (None,) * (dims - 1)
    fwd = np.exp(mu + 1j * p_t)[time]  # e^{mu} e^{i p_t}
    bwd = np.exp(-mu - 1j * p_t)[time]
    spatial = 0.0
    for axis in range(1, dims):
        p = 2.0 * np.pi * np.arange(sizes[axis]) / sizes[axis]
        index = tuple(slice(None) if a == axis else None for a in range(dims))
        spatial = spatial + 2.0 * np.cos(p)[index]
    m = eta - spatial - (fwd + bwd)
    volume = math.prod(sizes)
    phi2 = float(np.sum(1.0 / m).real) / volume
    n = float(np.sum((fwd - bwd) / m).real) / volume
    return n, phi2
