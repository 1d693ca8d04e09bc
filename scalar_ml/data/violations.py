r"""Artificial flux violations: open worms inserted into closed configurations (SPEC §5).

A closed configuration satisfies :math:`\operatorname{div}_x k = 0` at every site. An **open worm**
is a random walk on the periodic lattice, started at a random site ``s`` with a random sign
``Δ = ±1``: each step picks a direction ``ν ∈ {t, x}`` and an orientation uniformly and changes ``k``
on the traversed link, with no acceptance test. A forward step from ``h`` adds ``Δ`` to
``k[h, ν]``; a backward step to ``y = h − ν̂`` adds ``−Δ`` to ``k[y, ν]``. Either way the flux
``Δ`` is carried along the path, so only the two ends change: ``div_s k += Δ`` and
``div_e k −= Δ`` at the end point ``e``; ``l`` is never touched.

Rules enforced here (so that labels are exact):

- every worm walks at least ``min_length`` steps (default 1) and at most ``max_length`` steps
  before it may stop (default ``Nt + Nx``); it stops at the first site after that which is
  **different from its start and free**. Free means: no violation there before this worm. The
  start is drawn uniformly among the free sites (redrawn while occupied). Hence every worm adds
  exactly two new violations with ``|div k| = 1``, and for ``M`` worms
  ``½ Σ_x |div_x k| = M`` exactly;
- ``M`` worms need ``2M`` distinct end points: ``2M > V`` is refused with a clear error before any
  work; the input must be closed (``div k = 0`` everywhere), otherwise the counts would be ambiguous.

Everything is drawn from a :class:`numpy.random.Generator`, vectorised over the configurations, so
the result depends only on the inputs and the generator's state (same seed ⇒ same array).
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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scalar_ml.physics.observables import flux_divergence

__all__ = [
    "check_worms_fit",
    "has_violation",
    "insert_open_worms",
    "max_worms",
    "violation_count",
]


def max_worms(nt: int, nx: int) -> int:
    """The largest number of open worms with pairwise distinct end points on ``nt × nx``: ``V // 2``."""
    return (int(nt) * int(nx)) // 2


def check_worms_fit(n_worms: int | Sequence[int] | np.ndarray, nt: int, nx: int) -> None:
    """Raise ``ValueError`` unless every worm count is an integer ``0 <= M <= V // 2``.

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
    volume = int(nt) * int(nx)
    if counts.size and 2 * int(counts.max()) > volume:
        m = int(counts.max())
        raise ValueError(
            f"{m} open worms need {2 * m} distinct end points but a {nt}x{nx} lattice has only "
            f"{volume} sites (at most {max_worms(nt, nx)} worms fit)"
        )


def violation_count(configs: np.ndarray) -> np.ndarray:
    """``½ Σ_x |div_x k|`` per configuration (int64), recomputed from ``k``: ``(..., 4, Nt, Nx) -> (...)``.

    Equals the number of inserted open worms when their end points never coincide.
    """
    total = np.abs(flux_divergence(configs)).sum(axis=(-2, -1))
    if np.any(total % 2):  # Σ_x div_x k = 0 always, so Σ |div| is even on any configuration
        raise AssertionError("Σ|div k| is odd: the divergence is inconsistent")
    return total // 2


def has_violation(configs: np.ndarray) -> np.ndarray:
    """Whether ``div_x k ≠ 0`` at some site, per configuration (bool), recomputed from ``k``."""
    return np.any(flux_divergence(configs) != 0, axis=(-2, -1))


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
        configs: ``(N, 4, Nt, Nx)`` integer configurations, closed (``div k = 0``); not modified.
        n_worms: one count for all configurations, or ``N`` counts (integers ``0 <= M <= V // 2``).
        rng: the random source; the result is a deterministic function of its state.
        min_length: every worm makes at least this many steps before it may stop (``>= 1``).
        max_length: a worm's nominal length is drawn uniformly from ``[min_length, max_length]``
            (default ``Nt + Nx``); it then continues until it stands on a free site other than its
            start (see the module docstring), so actual lengths can exceed it.

    Returns:
        A new ``(N, 4, Nt, Nx)`` array of the input dtype, with ``violation_count == n_worms``
        (checked here; an ``AssertionError`` would mean a bug, never silently wrong labels).

    Raises:
        ValueError: wrong shapes, non-closed input, negative counts, or more worms than fit.
    """
    arr = np.asarray(configs)
    if arr.ndim != 4 or arr.shape[1] != 4:
        raise ValueError(f"configs must have shape (N, 4, Nt, Nx), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"configs must be integer arrays, got dtype {arr.dtype}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n_cfg, _, nt, nx = arr.shape
    counts = np.asarray(n_worms)
    if counts.ndim == 0:
        counts = np.full(n_cfg, counts)
    if counts.shape != (n_cfg,):
        raise ValueError(f"n_worms must be a scalar or have shape ({n_cfg},), got {counts.shape}")
    check_worms_fit(counts, nt, nx)
    counts = counts.astype(np.int64)
    if (
        isinstance(min_length, bool)
        or not isinstance(min_length, int | np.integer)
        or min_length < 1
    ):
        raise ValueError(f"min_length must be an integer >= 1, got {min_length!r}")
    if max_length is None:
        max_length = max(int(min_length), nt + nx)
    if isinstance(max_length, bool) or not isinstance(max_length, int | np.integer):
        raise ValueError(f"max_length must be an integer, got {max_length!r}")
    if max_length < min_length:
        raise ValueError(f"max_length ({max_length}) must be >= min_length ({min_length})")
    div0 = flux_divergence(arr)
    open_ = np.flatnonzero(np.any(div0 != 0, axis=(-2, -1)))
    if open_.size:
        raise ValueError(
            f"{open_.size} input configuration(s) are not closed (div k != 0; first: index "
            f"{open_[0]}): open worms can only be counted on closed configurations"
        )

    out = np.array(arr, copy=True)
    flat = out.reshape(n_cfg, 4, nt * nx)  # a view: updates land in ``out``
    volume = nt * nx
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
        t, x = np.divmod(start, nx)
        steps = np.zeros(n_act, dtype=np.int64)
        walking = np.ones(n_act, dtype=bool)
        while walking.any():
            w = np.flatnonzero(walking)
            move = rng.integers(4, size=w.size)  # 0: +t, 1: -t, 2: +x, 3: -x
            nu = move // 2
            backward = (move % 2) == 1
            tw, xw = t[w], x[w]
            # The link that is traversed starts at the head (forward) or at its neighbour (backward).
            lt = np.where(backward & (nu == 0), (tw - 1) % nt, tw)
            lx = np.where(backward & (nu == 1), (xw - 1) % nx, xw)
            change = np.where(backward, -delta[w], delta[w]).astype(out.dtype)
            np.add.at(flat, (cfg[w], nu, lt * nx + lx), change)
            step_t = np.where(nu == 0, np.where(backward, -1, 1), 0)
            step_x = np.where(nu == 1, np.where(backward, -1, 1), 0)
            t[w] = (tw + step_t) % nt
            x[w] = (xw + step_x) % nx
            steps[w] += 1
            head = t[w] * nx + x[w]
            done = (steps[w] >= length[w]) & (head != start[w]) & ~occupied[cfg[w], head]
            walking[w[done]] = False
        occupied[cfg, start] = True
        occupied[cfg, t * nx + x] = True

    got = violation_count(out)
    if not np.array_equal(got, counts):
        bad_i = int(np.flatnonzero(got != counts)[0])
        raise AssertionError(
            f"open-worm insertion produced {got[bad_i]} violations instead of {counts[bad_i]} "
            f"(configuration {bad_i}): this is a bug"
        )
    return out
