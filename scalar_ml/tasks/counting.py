r"""Task 3 (SPEC §5): the number of open worms in a configuration, MSE loss.

Target ``½ Σ_x |div_x k|`` (end points never coincide, so this is the inserted count exactly;
recomputed and checked). In training data each split of each point is divided as evenly as
possible among the counts in ``data.worms`` (seeded assignment: half 0, half 5 by default); in an
evaluation cell every configuration gets ``M`` worms.

Metrics: ``acc`` (the rounded prediction equals the count; also logged in training), ``pred_mean``
and ``pred_std`` (mean and spread of the predicted count); the figure predicted vs true count per
lattice size (:func:`count_pred_vs_true`).

>>> import numpy as np
>>> from scalar_ml.physics import PhysicsParams
>>> from scalar_ml.tasks import ClosedSample
>>> closed = np.zeros((4, 4, 6, 6), dtype=np.int32)
>>> x, y = TASK.make_examples(ClosedSample(closed, PhysicsParams(4.01, 1.0, 1.0), {}),
...                           np.array([0, 1, 2, 3]), np.random.default_rng(0))
>>> y[:, 0].tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scalar_ml.tasks.base import Metric
from scalar_ml.tasks.violations import ViolationTask, even_spread

__all__ = ["TASK", "CountingTask", "count_pred_vs_true"]


class CountingTask(ViolationTask):
    """Regression of the number of open worms per configuration."""

    name = "counting"
    order = 3
    title = "counting flux violations"
    targets = ("count",)
    metrics = (
        Metric(
            "acc",
            "fraction",
            lambda o: (o.pred[:, 0].round() == o.target[:, 0]).to(o.pred.dtype),
            training=True,
        ),
        Metric("pred_mean", "mean", lambda o: o.pred[:, 0]),
        Metric("pred_std", "spread", lambda o: o.pred[:, 0]),
    )

    def training_counts(self, rng: np.random.Generator, n: int, worms: Sequence[int]) -> np.ndarray:
        return even_spread(rng, n, worms)

    def cell_counts(self, rng: np.random.Generator, n: int, worms: int) -> np.ndarray:
        return np.full(n, worms, dtype=np.int64)

    def label(self, configs: np.ndarray, counts: np.ndarray) -> np.ndarray:
        from scalar_ml.data.violations import violation_count

        count = violation_count(configs, dims=configs.ndim - 2)
        if not np.array_equal(count, counts):
            raise RuntimeError("counting labels disagree with the inserted worms: this is a bug")
        return count.astype(np.float64)[:, None]

    def figures(self) -> tuple[Any, ...]:
        from scalar_ml.evaluation import plots

        return (plots.loss_vs_size, plots.loss_maps, count_pred_vs_true)


def count_pred_vs_true(df: Any, task: str) -> list[Any]:
    """Predicted vs true count per lattice size, one line per physics point, one figure per group."""
    from scalar_ml.evaluation import plots

    return plots.count_pred_vs_true(df, task, title="predicted vs true count")


TASK = CountingTask()
