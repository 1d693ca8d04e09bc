r"""Task 1 (SPEC §5): regression of the per-configuration observables ``(n, |φ|²)``, MSE loss.

Examples are closed configurations (no worms). The targets are recomputed from each configuration by
the theory's measurement (:meth:`scalar_ml.physics.theory.Theory.measure`) and checked against the
values stored with the ensemble: a disagreement means a damaged cache entry or a measurement bug and
raises ``RuntimeError``. Loss: mean squared error over both targets (equal weight).

Symmetries (:meth:`ObservablesTask.transform_targets`): ``|φ|²`` is invariant under every point
symmetry, ``n`` changes sign with ``T`` or ``C`` alone (like μ) and is kept by ``P`` and ``TC``; the
swap ``S`` maps ``n`` to the spatial winding, which the targets do not determine.

Metrics: ``mse_n`` and ``mse_phi2`` (also logged in training), and the means of prediction and Monte
Carlo value, ``pred_n``, ``mc_n``, ``pred_phi2``, ``mc_phi2`` (their comparison across the Silver
Blaze onset is the task's main figure, :func:`observables_vs_scan`).

>>> import numpy as np
>>> from scalar_ml.physics import PhysicsParams, get_theory
>>> closed = np.zeros((2, 4, 4, 4), dtype=np.int32)
>>> p = PhysicsParams(4.01, 1.0, 1.0)
>>> stored = get_theory().measure(closed, p)
>>> x, y = TASK.make_examples(ClosedSample(closed, p, stored), np.zeros(2, int), None)
>>> y.shape, round(float(y[0, 1]), 6)
((2, 2), 0.2087)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalar_ml.tasks.base import ClosedSample, Metric, Task

__all__ = ["TASK", "ObservablesTask", "observables_vs_scan"]

_TARGETS = ("n", "phi2")


def _squared_error(index: int):
    return lambda o: (o.pred[:, index] - o.target[:, index]) ** 2


def _column(which: str, index: int):
    return lambda o: getattr(o, which)[:, index]


class ObservablesTask(Task):
    """Regression of ``(n, |φ|²)`` per configuration."""

    name = "observables"
    order = 1
    title = "regression of the observables (n, |φ|²)"
    targets = _TARGETS
    metrics = (
        *(
            Metric(f"mse_{t}", "mean", _squared_error(i), training=True)
            for i, t in enumerate(_TARGETS)
        ),
        *(
            Metric(f"{prefix}_{t}", "mean", _column(which, i))
            for i, t in enumerate(_TARGETS)
            for prefix, which in (("pred", "pred"), ("mc", "target"))
        ),
    )

    def transforms_targets(self, element: Any) -> bool:
        """Every element without the swap ``S``: ``S`` turns the temporal winding (``n``) into the
        spatial one, which ``(n, |φ|²)`` do not determine."""
        return not element.swap

    def transform_targets(self, element: Any, targets: Any) -> Any:
        """``n -> c·s_t·n`` (it flips with ``T`` or ``C`` alone, like μ), ``|φ|²`` is invariant
        (``f_x`` moves with its site): :mod:`scalar_ml.physics.symmetry`."""
        self._check_transforms(element)
        out = targets * 1
        if element.mu_image(1.0) < 0:  # the sign c·s_t by which n and mu change
            i = self.targets.index("n")
            out[:, i] = -out[:, i]
        return out

    def make_examples(
        self,
        sample: ClosedSample,
        counts: np.ndarray,
        rng: Any,
        *,
        max_worm_length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        from scalar_ml.physics.theory import get_theory

        if np.any(np.asarray(counts) != 0):
            raise ValueError(f"task {self.name} takes closed configurations only (no worms)")
        configs = np.asarray(sample.configs)
        measured = get_theory().measure(configs, sample.params, dims=configs.ndim - 2)
        for name in self.targets:
            if not np.allclose(measured[name], sample.observables[name], rtol=1e-9, atol=1e-12):
                raise RuntimeError(
                    f"recomputed {name} differs from the ensemble's stored value at {sample.params}: "
                    "the cache entry or the measurement is inconsistent"
                )
        return sample.configs, np.stack([measured[name] for name in self.targets], axis=1)

    def figures(self) -> tuple[Any, ...]:
        from scalar_ml.evaluation import plots

        return (plots.loss_vs_size, observables_vs_scan, plots.loss_vs_scan, plots.loss_maps)


def observables_vs_scan(df: Any, task: str) -> list[Any]:
    """Network prediction vs Monte Carlo of each target along the theory's scan parameter (μ)."""
    from scalar_ml.evaluation import plots

    return plots.prediction_vs_scan(
        df,
        targets=_TARGETS,
        title="network prediction vs Monte Carlo across the Silver Blaze onset",
        stem="observables_vs_mu",
    )


TASK = ObservablesTask()
