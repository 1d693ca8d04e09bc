r"""Per-cell metrics of a trained network, with standard errors, as its task defines them.

The metrics of a cell are the task's evaluation metrics (:meth:`scalar_ml.tasks.Task.evaluation_metrics`):
``loss`` (the mean per-configuration training loss: MSE, or binary cross entropy on the logits) and
the task's own (e.g. ``mse_n``, ``pred_n`` for observables; ``acc``, ``tpr``, ``tnr`` for detection;
``acc``, ``pred_mean``, ``pred_std`` for counting), each with its standard error (see
:mod:`scalar_ml.tasks.base`: means ``s/√N``, fractions ``√(p(1−p)/N)``, ratios by linearisation,
spreads none). They are computed by the same definitions that training logs, in float64.

Standard errors treat the configurations of a cell as independent (the sampler stores them
``>= 2 τ_int`` sweeps apart).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from scalar_ml.tasks import Outputs, Task, get_task

__all__ = ["cell_metrics", "predict"]


def predict(
    module: Any, inputs: np.ndarray, *, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Network outputs for ``inputs`` (N, C, Nt, Nx): ``(prediction, raw)``, float64.

    ``raw`` is what the training loss sees (the logits for a task with a loss on logits),
    ``prediction`` what the task makes of it (:meth:`~scalar_ml.tasks.Task.prediction`).
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    task: Task = module.task
    net = module.net
    preds, raws = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))
            raw = task.raw_output(net, x.to(net.dtype))
            preds.append(task.prediction(raw).double().numpy())
            raws.append(raw.double().numpy())
    return np.concatenate(preds), np.concatenate(raws)


def cell_metrics(
    task: str | Task, pred: np.ndarray, raw: np.ndarray, targets: np.ndarray
) -> Iterator[tuple[str, float, float]]:
    """``(metric, value, stderr)`` for one cell, in the order of ``task.metric_names``.

    Args:
        task: the task (or its name).
        pred: network predictions (probabilities for a loss on logits), shaped like ``targets``.
        raw: what the loss sees (logits for a loss on logits), shaped like ``targets``.
        targets: float targets ``(N, d)`` or ``(N, C, Nt, Nx)``.
    """
    import torch

    task = get_task(task)
    y = torch.as_tensor(np.asarray(targets, dtype=np.float64))
    p = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    r = torch.as_tensor(np.asarray(raw, dtype=np.float64))
    if p.shape != y.shape or r.shape != y.shape:
        raise ValueError(
            f"predictions {tuple(p.shape)}, raw outputs {tuple(r.shape)} and targets "
            f"{tuple(y.shape)} differ in shape"
        )
    outputs = Outputs(p, r, y, task.sample_loss(r, y))
    for metric in task.evaluation_metrics():
        value, se = metric.evaluate(outputs)
        yield metric.name, value, se
