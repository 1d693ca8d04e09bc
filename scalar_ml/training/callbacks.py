"""Callbacks that :func:`scalar_ml.training.train.train` always adds (not configurable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L

__all__ = ["RunInfo"]


class RunInfo(L.Callback):
    """Store the run's seed, resolved config and data description in every checkpoint.

    They land under ``checkpoint["scalar_ml"]`` as plain values, so
    ``torch.load(path, weights_only=True)["scalar_ml"]`` tells how a checkpoint was made (resuming
    with ``seed: null`` takes the seed from there; ``evaluate.py`` reads the task and data from it).
    """

    def __init__(self, seed: int, config: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        self.info = {"seed": int(seed), "config": dict(config), "data": dict(data)}

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["scalar_ml"] = self.info
