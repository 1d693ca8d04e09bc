r"""Flux divergence, site flux and per-configuration observables (SPEC §1–3), plain numpy.

In 2D a configuration has shape ``(..., 4, Nt, Nx)`` with channels ``[k_t, k_x, l_t, l_x]``; link
variables ``k[x, ν]``, ``l[x, ν]`` sit on the link from ``x`` to ``x + ν̂``; axis −2 is time,
axis −1 is space, both periodic. On a ``d``-dimensional lattice (``dims=d``, default 2) it is
``(..., 2d, N_0, …, N_{d-1})`` with channels ``[k_0 … k_{d-1}, l_0 … l_{d-1}]``, time (ν = 0)
first. All functions accept any number of leading (batch) axes; since those cannot be told from
the lattice axes, the dimension is never guessed: d-dimensional callers pass ``dims``.

* Divergence: :math:`\operatorname{div}_x k = \sum_\nu (k_{x,\nu} - k_{x-\hat\nu,\nu})`;
  closed (physical) configurations have :math:`\operatorname{div} k = 0` at every site.
* Site flux: :math:`f_x = \sum_\nu [\,|k_{x,\nu}| + |k_{x-\hat\nu,\nu}|
  + 2(l_{x,\nu} + l_{x-\hat\nu,\nu})\,]` (all ``2d`` links touching ``x``).
* Charge density :math:`n = \frac1V \sum_x k_{x,t}`,
  :math:`|\phi|^2 = \frac1V \sum_x W(f_x+2)/W(f_x)`,
  :math:`|\phi|^4 = \frac1V \sum_x W(f_x+4)/W(f_x)`.
* Dual weight (SPEC §2, unnormalised): :func:`log_dual_weight`.

>>> cfg = np.zeros((4, 3, 2), dtype=np.int32)
>>> cfg[0, :, 1] = 1                   # one unit of flux winding around time at x = 1
>>> int(np.abs(flux_divergence(cfg)).sum())
0
>>> site_f(cfg).tolist()
[[0, 2], [0, 2], [0, 2]]
>>> charge_density(cfg)                # (1/V) Σ k_t = 3/6
0.5
>>> cfg[1, 0, 0] = 1                   # an open string: div k = ±1 at its two ends
>>> flux_divergence(cfg).tolist()
[[1, -1], [0, 0], [0, 0]]
>>> cube = np.zeros((6, 2, 3, 2), dtype=np.int32)   # 3D: [k_t, k_x, k_y, l_t, l_x, l_y]
>>> cube[2, 0, 1, :] = 1                             # flux winding around y at (t, x) = (0, 1)
>>> int(np.abs(flux_divergence(cube, dims=3)).sum()), int(site_f(cube, dims=3).sum())
(0, 4)
"""

from __future__ import annotations

import numpy as np

from scalar_ml.physics.params import DIMENSIONS, PhysicsParams
from scalar_ml.physics.weights import WeightTable

__all__ = [
    "charge_density",
    "flux_divergence",
    "log_dual_weight",
    "measure",
    "site_f",
    "site_phi_moments",
]

_CHUNK = 4096  # configurations per block in measure() (bounded temporaries)


def _check_configs(configs: np.ndarray, dims: int = 2) -> np.ndarray:
    if dims not in DIMENSIONS:
        raise ValueError(f"dims must be one of {DIMENSIONS}, got {dims!r}")
    arr = np.asarray(configs)
    if arr.ndim < dims + 1 or arr.shape[-dims - 1] != 2 * dims:
        if dims == 2:
            raise ValueError(
                "configurations must have shape (..., 4, Nt, Nx) with channels "
                f"[k_t, k_x, l_t, l_x], got shape {arr.shape}"
            )
        raise ValueError(
            f"{dims}-dimensional configurations must have shape (..., {2 * dims}, N_0, ..., "
            f"N_{dims - 1}) with channels [k_0..k_{dims - 1}, l_0..l_{dims - 1}], got shape "
            f"{arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise ValueError(f"configurations must be integer arrays, got dtype {arr.dtype}")
    return arr


def _lattice_axes(dims: int) -> tuple[int, ...]:
    """The lattice axes ``(-d, …, -1)`` of a configuration field (time first)."""
    return tuple(range(-dims, 0))


def _channel(arr: np.ndarray, index: int, dims: int) -> np.ndarray:
    """Channel ``index`` of ``(..., 2d, *shape)``: ``(..., *shape)``."""
    return arr[(..., index) + (slice(None),) * dims]


def flux_divergence(configs: np.ndarray, *, dims: int = 2) -> np.ndarray:
    """:math:`\\operatorname{div}_x k` for every site: ``(..., 2d, *shape) -> (..., *shape)``."""
    arr = _check_configs(configs, dims)
    div = None
    for nu, axis in enumerate(_lattice_axes(dims)):
        k = _channel(arr, nu, dims).astype(np.int64)
        div = k - np.roll(k, 1, axis=axis) if div is None else div + k - np.roll(k, 1, axis=axis)
    return div


def site_f(configs: np.ndarray, *, dims: int = 2) -> np.ndarray:
    """Site flux :math:`f_x` (int64): ``(..., 2d, *shape) -> (..., *shape)``."""
    arr = _check_configs(configs, dims)
    f = None
    for nu, axis in enumerate(_lattice_axes(dims)):
        a = np.abs(_channel(arr, nu, dims).astype(np.int64)) + 2 * _channel(
            arr, dims + nu, dims
        ).astype(np.int64)
        f = a + np.roll(a, 1, axis=axis) if f is None else f + a + np.roll(a, 1, axis=axis)
    return f


def charge_density(configs: np.ndarray, *, dims: int = 2) -> np.ndarray | float:
    """:math:`n = \\frac1V \\sum_x k_{x,t}` per configuration (float64, shape ``(...)``)."""
    arr = _check_configs(configs, dims)
    n = _channel(arr, 0, dims).astype(np.float64).mean(axis=_lattice_axes(dims))
    return float(n) if n.ndim == 0 else n


def site_phi_moments(f: np.ndarray, table: WeightTable) -> tuple[np.ndarray, np.ndarray]:
    """Local :math:`\\langle|\\phi_x|^2\\rangle = W(f+2)/W(f)` and :math:`W(f+4)/W(f)` per site."""
    f = np.asarray(f)
    if f.size and f.min() < 0:
        raise ValueError(f"site flux f must be >= 0, got min(f) = {int(f.min())}")
    table.ensure(int(f.max(initial=0)) + 4)
    log_w = table.log_w
    base = log_w[f]
    return np.exp(log_w[f + 2] - base), np.exp(log_w[f + 4] - base)


def measure(
    configs: np.ndarray,
    params: PhysicsParams | WeightTable,
    *,
    check_closed: bool = False,
    dims: int = 2,
) -> dict[str, np.ndarray]:
    """Per-configuration ``n``, ``phi2`` (:math:`|\\phi|^2`) and ``phi4`` (:math:`|\\phi|^4`).

    Args:
        configs: ``(N, 4, Nt, Nx)`` (or a single ``(4, Nt, Nx)``) integer configurations; on a
            ``dims``-dimensional lattice ``(N, 2d, *shape)``.
        params: the couplings (a :class:`WeightTable` for them is built), or a ready table.
        check_closed: raise ``ValueError`` if any configuration has ``div k != 0`` or ``l < 0``.
        dims: the lattice dimension d.

    Returns:
        ``{"n": ..., "phi2": ..., "phi4": ...}``, float64 arrays of shape ``(N,)`` (or scalars'
        0-d arrays for a single configuration).

    >>> from scalar_ml.physics.params import PhysicsParams
    >>> obs = measure(np.zeros((2, 4, 4, 4), dtype=np.int32), PhysicsParams(4.01, 1.0, 1.0))
    >>> print(f"{obs['phi2'][0]:.6f}")   # empty lattice: W(2)/W(0) at every site
    0.208700
    """
    arr = _check_configs(configs, dims)
    if isinstance(params, WeightTable):
        table = params
    elif isinstance(params, PhysicsParams):
        params.validate(dims)
        table = WeightTable(params.eta, params.lam)
    else:
        raise ValueError(f"params must be a PhysicsParams or a WeightTable, got {type(params)!r}")
    axes = _lattice_axes(dims)
    batch = arr.reshape((-1, *arr.shape[-dims - 1 :]))
    if check_closed:
        if np.any(batch[:, dims:] < 0):
            raise ValueError("configurations with l < 0 found")
        if np.any(flux_divergence(batch, dims=dims) != 0):
            raise ValueError("configurations with div k != 0 (flux violations) found")
    out = {name: np.empty(batch.shape[0], dtype=np.float64) for name in ("n", "phi2", "phi4")}
    for start in range(0, batch.shape[0], _CHUNK):
        block = batch[start : start + _CHUNK]
        phi2, phi4 = site_phi_moments(site_f(block, dims=dims), table)
        out["n"][start : start + _CHUNK] = block[:, 0].astype(np.float64).mean(axis=axes)
        out["phi2"][start : start + _CHUNK] = phi2.mean(axis=axes)
        out["phi4"][start : start + _CHUNK] = phi4.mean(axis=axes)
    shape = arr.shape[: -dims - 1]
    return {name: value.reshape(shape) for name, value in out.items()}


def log_dual_weight(
    configs: np.ndarray,
    params: PhysicsParams,
    *,
    table: WeightTable | None = None,
    dims: int = 2,
) -> np.ndarray | float:
    """Logarithm of the unnormalised dual weight of each configuration (SPEC §2).

    .. math::

        \\log w[k, l] = \\mu \\sum_x k_{x,t}
            - \\sum_{x,\\nu} \\big[\\ln (|k_{x,\\nu}| + l_{x,\\nu})! + \\ln l_{x,\\nu}!\\big]
            + \\sum_x \\log W(f_x)

    on closed configurations; the weight of a configuration with :math:`\\operatorname{div} k \\ne 0`
    anywhere is zero, its logarithm ``-inf``. Float64, shape ``(...)`` (a float for one
    configuration). ``table`` (a :class:`WeightTable` for ``params``' couplings) is built when not
    given; ``dims`` is the lattice dimension d (configurations ``(..., 2d, *shape)``).

    Raises ``ValueError`` for ``l < 0`` or a table for other couplings.

    >>> from scalar_ml.physics.params import PhysicsParams
    >>> cfg = np.zeros((4, 2, 2), dtype=np.int32)
    >>> w0 = log_dual_weight(cfg, PhysicsParams(4.01, 1.0, 0.0))   # empty: Π_x W(0) on 4 sites
    >>> bool(np.isclose(w0, 4 * np.log(0.11293311), atol=1e-7))
    True
    >>> cfg[1, 0, 0] = 1                                            # an open string: weight 0
    >>> log_dual_weight(cfg, PhysicsParams(4.01, 1.0, 0.0))
    -inf
    """
    from scipy.special import gammaln

    arr = _check_configs(configs, dims)
    if not isinstance(params, PhysicsParams):
        raise ValueError(f"params must be a PhysicsParams, got {type(params).__name__}")
    params.validate(dims)
    if table is None:
        table = WeightTable(params.eta, params.lam)
    elif (table.eta, table.lam) != (float(params.eta), float(params.lam)):
        raise ValueError(
            f"table is for eta = {table.eta}, lam = {table.lam}, params have eta = {params.eta}, "
            f"lam = {params.lam}"
        )
    axes = _lattice_axes(dims)
    batch = arr.reshape((-1, *arr.shape[-dims - 1 :]))
    k = batch[:, :dims].astype(np.int64)
    l = batch[:, dims:].astype(np.int64)
    if l.size and l.min() < 0:
        raise ValueError(f"l must be >= 0 (an occupation number), got min(l) = {int(l.min())}")
    f = site_f(batch, dims=dims)
    table.ensure(int(f.max(initial=0)))
    links = gammaln(np.abs(k) + l + 1.0) + gammaln(l + 1.0)
    out = (
        params.mu * k[:, 0].sum(axis=axes)
        - links.sum(axis=(-dims - 1, *axes))
        + table.log_w[f].sum(axis=axes)
    )
    out[np.any(flux_divergence(batch, dims=dims) != 0, axis=axes)] = -np.inf
    out = out.reshape(arr.shape[: -dims - 1])
    return float(out) if out.ndim == 0 else out
