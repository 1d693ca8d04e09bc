r"""Per-cell metrics of a trained network, with standard errors.

Losses are those of training (:mod:`scalar_ml.training.module`):

- ``observables``: ``loss`` = MSE averaged over both targets ``(n, |φ|²)``; also ``mse_n``,
  ``mse_phi2`` and the means of prediction and Monte Carlo value, ``pred_n``, ``mc_n``,
  ``pred_phi2``, ``mc_phi2``;
- ``detection``: ``loss`` = binary cross entropy (on the logits when the network ends in a sigmoid,
  as in training), ``acc`` (threshold 0.5), ``tpr`` (accuracy on the violated half), ``tnr``
  (accuracy on the closed half);
- ``counting``: ``loss`` = MSE of the count, ``acc`` (rounded prediction equals the count),
  ``pred_mean`` and ``pred_std`` (mean and spread of the predicted count).

Standard errors treat the configurations of a cell as independent (the sampler stores them
``>= 2 τ_int`` sweeps apart): ``std(per-sample values, ddof=1) / sqrt(N)`` for means and MSEs,
``sqrt(p (1 − p) / N)`` for accuracies; ``pred_std`` carries none (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["METRICS", "cell_metrics", "predict"]

#: Metric names per task, in the order they appear in the tidy CSV.
METRICS: dict[str, tuple[str, ...]] = {
    "observables": ("loss", "mse_n", "mse_phi2", "pred_n", "mc_n", "pred_phi2", "mc_phi2"),
    "detection": ("loss", "acc", "tpr", "tnr"),
    "counting": ("loss", "acc", "pred_mean", "pred_std"),
}


def predict(
    module: Any, inputs: np.ndarray, *, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Network outputs for ``inputs`` (N, 4, Nt, Nx): ``(prediction, raw)``, float64 (N, d).

    ``prediction`` is what :meth:`LatticeModule.forward` returns (probabilities for detection);
    ``raw`` is what the training loss sees (the logits for a detection network ending in a sigmoid).
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    net = module.net
    use_logits = module.task == "detection" and net.ends_with_sigmoid
    preds, raws = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))
            x = x.to(net.dtype)
            if use_logits:
                raw = net.logits(x)
                pred = torch.sigmoid(raw)
            else:
                raw = net(x)
                pred = raw
            preds.append(pred.double().numpy())
            raws.append(raw.double().numpy())
    return np.concatenate(preds), np.concatenate(raws)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return mean, se


def _acc_se(correct: np.ndarray) -> tuple[float, float]:
    n = correct.size
    if n == 0:
        return math.nan, math.nan
    p = float(np.mean(correct))
    return p, math.sqrt(p * (1.0 - p) / n)


def _bce_with_logits(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample ``BCEWithLogits`` (the stable form ``max(z, 0) − z y + log(1 + e^{−|z|})``)."""
    return np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))


def _bce(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample BCE on probabilities, logs clamped at −100 like ``torch.nn.BCELoss``."""
    logp = np.maximum(np.log(np.clip(p, 0.0, None)), -100.0) if p.size else p
    log1mp = np.maximum(np.log(np.clip(1.0 - p, 0.0, None)), -100.0) if p.size else p
    return -(y * logp + (1.0 - y) * log1mp)


def cell_metrics(
    task: str, pred: np.ndarray, raw: np.ndarray, targets: np.ndarray, *, logits: bool = False
) -> Iterator[tuple[str, float, float]]:
    """``(metric, value, stderr)`` for one cell, in the order of :data:`METRICS` ``[task]``.

    Args:
        task: ``observables``, ``detection`` or ``counting``.
        pred: network predictions (N, d) (probabilities for detection).
        raw: what the loss sees (logits for detection when ``logits``), (N, d).
        targets: float targets (N, d).
        logits: ``raw`` holds logits (detection networks ending in a sigmoid).
    """
    y = np.asarray(targets, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    raw = np.asarray(raw, dtype=np.float64)
    if pred.shape != y.shape:
        raise ValueError(f"predictions {pred.shape} and targets {y.shape} differ in shape")
    if task == "observables":
        sq = (pred - y) ** 2
        yield ("loss", *_mean_se(sq.mean(axis=1)))
        yield ("mse_n", *_mean_se(sq[:, 0]))
        yield ("mse_phi2", *_mean_se(sq[:, 1]))
        yield ("pred_n", *_mean_se(pred[:, 0]))
        yield ("mc_n", *_mean_se(y[:, 0]))
        yield ("pred_phi2", *_mean_se(pred[:, 1]))
        yield ("mc_phi2", *_mean_se(y[:, 1]))
    elif task == "detection":
        per = _bce_with_logits(raw, y) if logits else _bce(pred, y)
        yield ("loss", *_mean_se(per[:, 0]))
        correct = (pred[:, 0] >= 0.5) == (y[:, 0] >= 0.5)
        yield ("acc", *_acc_se(correct))
        yield ("tpr", *_acc_se(correct[y[:, 0] >= 0.5]))
        yield ("tnr", *_acc_se(correct[y[:, 0] < 0.5]))
    elif task == "counting":
        yield ("loss", *_mean_se(((pred - y) ** 2)[:, 0]))
        yield ("acc", *_acc_se(np.round(pred[:, 0]) == y[:, 0]))
        yield ("pred_mean", *_mean_se(pred[:, 0]))
        yield ("pred_std", float(pred[:, 0].std(ddof=1)) if len(pred) > 1 else math.nan, math.nan)
    else:
        raise ValueError(f"unknown task {task!r}")
