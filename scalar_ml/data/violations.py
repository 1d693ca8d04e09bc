r"""Artificial flux violations: open worms inserted into closed configurations (SPEC §5).

A closed configuration satisfies :math:`\operatorname{div}_x k = 0` at every site. An **open worm**
is a random walk on the periodic lattice, started at a random site ``s`` with a random sign
``Δ = ±1``: each step picks a direction ``ν ∈ {t, x}`` (in d dimensions ``ν = 0 … d−1``) and an
orientation uniformly and changes ``k`` on the traversed link, with no acceptance test. A forward step from ``h`` adds ``Δ`` to
``k[h, ν]``; a backward step to ``y = h − ν̂`` adds ``−Δ`` to ``k[y, ν]``. Either way the flux
``Δ`` is carried along the path, so only the two ends change: ``div_s k += Δ`` and
``div_e k −= Δ`` at the end point ``e``; ``l`` is never touched.

Rules enforced here (so that labels are exact):

- every worm walks at least ``min_length`` steps (default 1) and at most ``max_length`` steps
  before it may stop (default ``Nt + Nx``, in d dimensions the sum of the extents); it stops at the first site after that which is
  **different from its start and free**. Free means: no violation there before this worm. The
  start is drawn uniformly among the free sites (redrawn while occupied). Hence every worm adds
  exactly two new violations with ``|div k| = 1``, and for ``M`` worms
  ``½ Σ_x |div_x k| = M`` exactly;
- ``M`` worms need ``2M`` distinct end points: ``2M > V`` is refused with a clear error before any
  work; the input must be closed (``div k = 0`` everywhere), otherwise the counts would be ambiguous.

Everything is drawn from a :class:`numpy.random.Generator`, vectorised over the configurations, so
the result depends only on the inputs and the generator's state (same seed ⇒ same array). The
draws are the same in every dimension (a step draws one of ``2d`` moves), so 2D results are those
of the original 2D code. Batches are ``(N, 2d, *shape)``: the dimension is ``ndim − 2``.
Labels are never taken from the intent: use :func:`violation_count` / :func:`has_violation`, which
recompute ``div k`` from the configuration (``scalar_ml.physics.observables.flux_divergence``).

>>> cfg = np.zeros((3, 4, 6, 6), dtype=np.int32)
>>> out = insert_open_worms(cfg, [0, 1, 5], np.random.default_rng(0))
>>> violation_count(out).tolist(), has_violation(out).tolist()
([0, 1, 5], [False, True, True])
>>> bool(np.all(out[:, 2:] == 0))      # l untouched
True
>>> insert_open_worms(cfg, 19, np.random.default_rng(0))
Traceback (most recent call last):
...
ValueError: 19 open worms need 38 distinct end points but a 6x6 lattice has only 36 sites (at most 18 worms fit)
>>> cube = insert_open_worms(np.zeros((2, 6, 4, 4, 4), dtype=np.int32), [2, 7], np.random.default_rng(1))
>>> violation_count(cube, dims=3).tolist()
[2, 7]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scalar_ml.physics.observables import flux_divergence
from scalar_ml.physics.params import DIMENSIONS

__all__ = [
    "check_worms_fit",
    "has_violation",
    "insert_open_worms",
    "max_worms",
    "violation_count",
]


def max_worms(*extents: int) -> int:
    """The largest number of open worms with pairwise distinct end points on a lattice of these
    extents (``nt, nx`` or ``N_0, …, N_{d-1}``): ``V // 2``."""
    return math.prod(int(n) for n in extents) // 2


def check_worms_fit(n_worms: int | Sequence[int] | np.ndarray, *extents: int) -> None:
    """Raise ``ValueError`` unless every worm count is an integer ``0 <= M <= V // 2`` on the lattice
    of these extents (``nt, nx``, or ``N_0, …, N_{d-1}``).

    >>> check_worms_fit([0, 5], 8, 8)
    >>> check_worms_fit(-1, 8, 8)
    Traceback (most recent call last):
    ...
    ValueError: worm counts must be integers >= 0, got -1
    """
    counts = np.atleast_1d(np.asarray(n_worms))
    if counts.dtype.kind == "b" or counts.dtype.kind not in "iu":
        # Allow integral floats coming from configs (e.g. 5.0) but nothing else.
        if counts.dtype.kind == "f" and np.all(np.isfinite(counts)) and np.all(counts % 1 == 0):
            counts = counts.astype(np.int64)
        else:
            raise ValueError(f"worm counts must be integers >= 0, got {n_worms!r}")
    if counts.size and counts.min() < 0:
        raise ValueError(f"worm counts must be integers >= 0, got {int(counts.min())}")
    volume = math.prod(int(n) for n in extents)
    if counts.size and 2 * int(counts.max()) > volume:
        m = int(counts.max())
        lattice = "x".join(str(int(n)) for n in extents)
        raise ValueError(
            f"{m} open worms need {2 * m} distinct end points but a {lattice} lattice has only "
            f"{volume} sites (at most {max_worms(*extents)} worms fit)"
        )


def violation_count(configs: np.ndarray, *, dims: int = 2) -> np.ndarray:
    """``½ Σ_x |div_x k|`` per configuration (int64), recomputed from ``k``:
    ``(..., 4, Nt, Nx) -> (...)``, or ``(..., 2d, *shape) -> (...)`` with ``dims = d``.

    Equals the number of inserted open worms when their end points never coincide.
    """
    total = np.abs(flux_divergence(configs, dims=dims)).sum(axis=tuple(range(-dims, 0)))
    if np.any(total % 2):  # Σ_x div_x k = 0 always, so Σ |div| is even on any configuration
        raise AssertionError("Σ|div k| is odd: the divergence is inconsistent")
    return total // 2


def has_violation(configs: np.ndarray, *, dims: int = 2) -> np.ndarray:
    """Whether ``div_x k ≠ 0`` at some site, per configuration (bool), recomputed from ``k``
    (``dims``: the lattice dimension d of ``(..., 2d, *shape)``)."""
    return np.any(flux_divergence(configs, dims=dims) != 0, axis=tuple(range(-dims, 0)))


def insert_open_worms(
    configs: np.ndarray,
    n_worms: int | Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    *,
    min_length: int = 1,
    max_length: int | None = None,
) -> np.ndarray:
    """Return a copy of ``configs`` with ``n_worms[i]`` open worms inserted into configuration ``i``.

    Args:
        configs: ``(N, 4, Nt, Nx)`` integer configurations, closed (``div k = 0``); not modified;
            on a d-dimensional lattice ``(N, 2d, N_0, …, N_{d-1})``.
        n_worms: one count for all configurations, or ``N`` counts (integers ``0 <= M <= V // 2``).
        rng: the random source; the result is a deterministic function of its state.
        min_length: every worm makes at least this many steps before it may stop (``>= 1``).
        max_length: a worm's nominal length is drawn uniformly from ``[min_length, max_length]``
            (default ``Nt + Nx``, the sum of the extents in d dimensions); it then continues until it stands on a free site other than its
            start (see the module docstring), so actual lengths can exceed it.

    Returns:
        A new array of the input's shape and dtype, with ``violation_count == n_worms``
        (checked here; an ``AssertionError`` would mean a bug, never silently wrong labels).

    Raises:
        ValueError: wrong shapes, non-closed input, negative counts, or more worms than fit.
    """
    arr = np.asarray(configs)
    dims = arr.ndim - 2
    if dims not in DIMENSIONS or arr.shape[1] != 2 * dims:
        raise ValueError(
            f"configs must have shape (N, 4, Nt, Nx), or (N, 2d, N_0, ..., N_(d-1)) in d = 3, 4 "
            f"dimensions, got {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise ValueError(f"configs must be integer arrays, got dtype {arr.dtype}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n_cfg, shape = arr.shape[0], arr.shape[2:]
    counts = np.asarray(n_worms)
    if counts.ndim == 0:
        counts = np.full(n_cfg, counts)
    if counts.shape != (n_cfg,):
        raise ValueError(f"n_worms must be a scalar or have shape ({n_cfg},), got {counts.shape}")
    check_worms_fit(counts, *shape)
    counts = counts.astype(np.int64)
    if (
        isinstance(min_length, bool)
        or not isinstance(min_length, int | np.integer)
        or min_length < 1
    ):
        raise ValueError(f"min_length must be an integer >= 1, got {min_length!r}")
    if max_length is None:
        max_length = max(int(min_length), sum(shape))
    if isinstance(max_length, bool) or not isinstance(max_length, int | np.integer):
        raise ValueError(f"max_length must be an integer, got {max_length!r}")
    if max_length < min_length:
        raise ValueError(f"max_length ({max_length}) must be >= min_length ({min_length})")
    div0 = flux_divergence(arr, dims=dims)
    open_ = np.flatnonzero(np.any(div0 != 0, axis=tuple(range(-dims, 0))))
    if open_.size:
        raise ValueError(
            f"{open_.size} input configuration(s) are not closed (div k != 0; first: index "
            f"{open_[0]}): open worms can only be counted on closed configurations"
        )

    out = np.array(arr, copy=True)
    volume = math.prod(shape)
    flat = out.reshape(n_cfg, 2 * dims, volume)  # a view: updates land in ``out``
    extents = np.asarray(shape, dtype=np.int64)[:, None]  # (d, 1)
    occupied = np.zeros((n_cfg, volume), dtype=bool)

    for m in range(int(counts.max(initial=0))):
        cfg = np.flatnonzero(counts > m)
        n_act = cfg.size
        # Start: uniform over free sites (redraw the occupied ones; at least 2 free sites remain).
        start = rng.integers(volume, size=n_act)
        bad = occupied[cfg, start]
        while bad.any():
            start[bad] = rng.integers(volume, size=int(bad.sum()))
            bad = occupied[cfg, start]
        delta = rng.choice(np.array([-1, 1], dtype=np.int64), size=n_act)
        length = rng.integers(min_length, max_length + 1, size=n_act)
        pos = np.stack(np.unravel_index(start, shape)).astype(np.int64)  # (d, n_act), time first
        steps = np.zeros(n_act, dtype=np.int64)
        walking = np.ones(n_act, dtype=bool)
        while walking.any():
            w = np.flatnonzero(walking)
            move = rng.integers(2 * dims, size=w.size)  # 2ν: +ν̂, 2ν + 1: −ν̂ (2D: +t, −t, +x, −x)
            nu = move // 2
            backward = (move % 2) == 1
            here = pos[:, w]
            on_axis = nu[None, :] == np.arange(dims)[:, None]  # (d, |w|): the axis of the step
            # The link that is traversed starts at the head (forward) or at its neighbour (backward).
            link = (here - (on_axis & backward[None, :])) % extents
            change = np.where(backward, -delta[w], delta[w]).astype(out.dtype)
            np.add.at(flat, (cfg[w], nu, np.ravel_multi_index(tuple(link), shape)), change)
            step = np.where(on_axis, np.where(backward, -1, 1)[None, :], 0)
            pos[:, w] = (here + step) % extents
            steps[w] += 1
            head = np.ravel_multi_index(tuple(pos[:, w]), shape)
            done = (steps[w] >= length[w]) & (head != start[w]) & ~occupied[cfg[w], head]
            walking[w[done]] = False
        occupied[cfg, start] = True
        occupied[cfg, np.ravel_multi_index(tuple(pos), shape)] = True

    got = violation_count(out, dims=dims)
    if not np.array_equal(got, counts):
        bad_i = int(np.flatnonzero(got != counts)[0])
        raise AssertionError(
            f"open-worm insertion produced {got[bad_i]} violations instead of {counts[bad_i]} "
            f"(configuration {bad_i}): this is a bug"
        )
    return out
