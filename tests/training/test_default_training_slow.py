"""Slow: the default counting training (0 and 5 worms, 8×8, seed's two points) learns to count."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from training_helpers import WARNING_FILTERS

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]


@pytest.mark.slow
@pytest.mark.ci
def test_default_counting_training_reaches_val_mse_below_0_05(make_cfg, tmp_path: Path) -> None:
    from scalar_ml.training.train import train

    cache = tmp_path / "cache"  # fresh: includes first-time sampling, like a new user's first run
    cfg = make_cfg(
        ["task=counting", "model=eq", "seed=0", "logger=none", "callbacks.rich_progress_bar=null"],
        cache=cache,
    )
    assert (
        cfg.data.worms == [0, 5]
        and cfg.data.n_train == 10000
        and cfg.model.preset == "counting/eq_1"
    )
    t0 = time.perf_counter()
    metrics = train(cfg)
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {k: metrics[k] for k in ("val/loss", "val/acc", "test/loss", "test/acc", "epochs")}
        )
    )
    print(f"default counting training incl. sampling: {elapsed:.0f} s")
    assert metrics["epochs"] == cfg.trainer.max_epochs
    assert metrics["val/loss"] < 0.05  # val/loss is the MSE of the count on the validation split
    assert metrics["test/loss"] < 0.05 and metrics["val/acc"] > 0.95
