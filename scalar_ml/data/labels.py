r"""Targets of the three tasks, always computed from the configurations themselves (SPEC §5).

One place for training (:mod:`scalar_ml.data.datamodules`) and evaluation
(:mod:`scalar_ml.evaluation.datasets`), so the two can never label data differently:

- observables: ``(n, |φ|²)`` recomputed by :func:`scalar_ml.physics.observables.measure` and checked
  against the values stored with the ensemble;
- detection: open worms inserted by :func:`~scalar_ml.data.violations.insert_open_worms`, label
  ``any_x div_x k ≠ 0``, checked against the insertion intent (``counts > 0``);
- counting: the same insertion, target ``½ Σ_x |div_x k|``, checked to equal the inserted count.

A disagreement between the recomputed label and the intent is a bug (or a damaged cache entry) and
raises ``RuntimeError``; it is never papered over.

>>> import numpy as np
>>> closed = np.zeros((4, 4, 6, 6), dtype=np.int32)
>>> out, count = insert_and_label("counting", closed, np.array([0, 1, 2, 3]), np.random.default_rng(0))
>>> count[:, 0].tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import numpy as np

from scalar_ml.data.violations import has_violation, insert_open_worms, violation_count
from scalar_ml.physics.params import PhysicsParams

__all__ = ["insert_and_label", "observable_targets"]


def observable_targets(
    configs: np.ndarray, params: PhysicsParams, stored_n: np.ndarray, stored_phi2: np.ndarray
) -> np.ndarray:
    """``(N, 2)`` float64 targets ``(n, |φ|²)`` of closed ``configs``, checked against stored values."""
    from scalar_ml.physics.observables import measure

    obs = measure(configs, params)
    for name, stored in (("n", stored_n), ("phi2", stored_phi2)):
        if not np.allclose(obs[name], stored, rtol=1e-9, atol=1e-12):
            raise RuntimeError(
                f"recomputed {name} differs from the ensemble's stored value at {params}: "
                "the cache entry or the measurement is inconsistent"
            )
    return np.stack([obs["n"], obs["phi2"]], axis=1)


def insert_and_label(
    task: str,
    configs: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
    *,
    max_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Insert ``counts[i]`` open worms into configuration ``i``; return ``(configs', (N, 1) labels)``.

    ``task`` is ``"detection"`` (label 1.0 where any ``div k ≠ 0``) or ``"counting"`` (label
    ``½ Σ_x |div_x k|``). Labels are float64 and recomputed from the new configurations.
    """
    counts = np.asarray(counts, dtype=np.int64)
    out = insert_open_worms(configs, counts, rng, max_length=max_length)
    if task == "detection":
        label = has_violation(out)
        if not np.array_equal(label, counts > 0):
            raise RuntimeError("detection labels disagree with the inserted worms: this is a bug")
        return out, label.astype(np.float64)[:, None]
    if task == "counting":
        count = violation_count(out)
        if not np.array_equal(count, counts):
            raise RuntimeError("counting labels disagree with the inserted worms: this is a bug")
        return out, count.astype(np.float64)[:, None]
    raise ValueError(f"insert_and_label: task must be 'detection' or 'counting', got {task!r}")
