r"""Task 2 (SPEC §5): does a configuration violate flux conservation? Binary, BCE on the logits.

Label ``1`` where any :math:`\operatorname{div}_x k \ne 0` (recomputed, checked against the intent
``counts > 0``). In training data a seeded half (``⌊n/2⌋``) of each split of each point gets open
worms, their number drawn uniformly from ``data.worms`` (each ``>= 1``); in an evaluation cell with
``M`` worms a seeded half gets ``M``. The networks end in a sigmoid (their ``forward`` returns
probabilities); the loss uses the logits before it.

Metrics: ``acc`` (threshold 0.5, also logged in training), ``tpr`` (accuracy on the violated
configurations) and ``tnr`` (on the closed ones).

>>> import numpy as np
>>> from scalar_ml.physics import PhysicsParams
>>> from scalar_ml.tasks import ClosedSample
>>> closed = np.zeros((4, 4, 6, 6), dtype=np.int32)
>>> x, y = TASK.make_examples(ClosedSample(closed, PhysicsParams(4.01, 1.0, 1.0), {}),
...                           np.array([0, 1, 0, 3]), np.random.default_rng(0))
>>> y[:, 0].tolist()
[0.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scalar_ml.tasks.base import Metric
from scalar_ml.tasks.violations import ViolationTask

__all__ = ["TASK", "DetectionTask"]


def _correct(o: Any) -> Any:
    return ((o.pred[:, 0] >= 0.5) == (o.target[:, 0] >= 0.5)).to(o.pred.dtype)


def _positive(o: Any) -> Any:
    return (o.target[:, 0] >= 0.5).to(o.pred.dtype)


class DetectionTask(ViolationTask):
    """Binary detection of flux violations per configuration."""

    name = "detection"
    order = 2
    title = "detection of flux violations"
    targets = ("violated",)
    head_activation = "sigmoid"
    loss_on_logits = True
    min_worms = 1
    min_cell_configs = 2
    metrics = (
        Metric("acc", "fraction", _correct, training=True),
        Metric("tpr", "ratio", lambda o: (_correct(o) * _positive(o), _positive(o))),
        Metric("tnr", "ratio", lambda o: (_correct(o) * (1 - _positive(o)), 1 - _positive(o))),
    )

    def training_counts(self, rng: np.random.Generator, n: int, worms: Sequence[int]) -> np.ndarray:
        counts = np.zeros(n, dtype=np.int64)
        violated = rng.permutation(n)[: n // 2]
        counts[violated] = rng.choice(np.asarray(worms, dtype=np.int64), size=violated.size)
        return counts

    def cell_counts(self, rng: np.random.Generator, n: int, worms: int) -> np.ndarray:
        counts = np.zeros(n, dtype=np.int64)
        counts[rng.permutation(n)[: n // 2]] = worms
        return counts

    def label(self, configs: np.ndarray, counts: np.ndarray) -> np.ndarray:
        from scalar_ml.data.violations import has_violation

        label = has_violation(configs, dims=configs.ndim - 2)
        if not np.array_equal(label, counts > 0):
            raise RuntimeError("detection labels disagree with the inserted worms: this is a bug")
        return label.astype(np.float64)[:, None]

    def figures(self) -> tuple[Any, ...]:
        from scalar_ml.evaluation import plots

        return (plots.loss_vs_size, plots.accuracy_maps, plots.loss_maps)


TASK = DetectionTask()
