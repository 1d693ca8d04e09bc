"""Family eqr through the training stack: `python train.py task=counting model=eqr`, every task, seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from app_helpers import subprocess_env
from training_helpers import REPO, WARNING_FILTERS, tiny_for

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]


def test_counting_eqr_trains_through_the_cli(tiny_cache: Path, tmp_path: Path) -> None:
    """The command of issue 15 with tiny data; the trained network stays exactly invariant."""
    from scalar_ml.models import count_parameters, symmetry_error, translation_error
    from scalar_ml.training.module import LatticeModule

    run_dir = tmp_path / "eqr"
    cmd = [
        sys.executable,
        "train.py",
        "task=counting",
        "model=eqr",
        *tiny_for("counting"),
        "seed=0",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=subprocess_env(tiny_cache, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["preset"] == "counting/eqr_1" and metrics["task"] == "counting"
    for key in ("train/loss", "val/loss", "test/loss"):
        assert math.isfinite(metrics[key]), key
    module = LatticeModule.load_from_checkpoint(
        run_dir / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert module.net.family == "eqr" and count_parameters(module.net) == 1800
    net = module.net.double()
    x = torch.cat([torch.randint(-2, 3, (4, 2, 8, 8)), torch.randint(0, 3, (4, 2, 8, 8))], 1)
    assert symmetry_error(net, x.double()) <= 1e-12
    assert translation_error(net, x.double()) <= 1e-12


@pytest.mark.parametrize("task", ["observables", "detection", "counting"])
def test_model_eqr_composes_and_runs_for_every_task(make_cfg, task: str) -> None:
    from scalar_ml.training.train import train

    cfg = make_cfg([f"task={task}", "model=eqr", *tiny_for(task), "debug=fdr"])
    assert cfg.model.preset == cfg.task.presets.eqr
    assert cfg.model.preset.startswith(f"{task}/eqr")
    metrics = train(cfg)
    assert metrics["preset"] == cfg.model.preset and metrics["global_step"] == 1
    assert math.isfinite(metrics["val/loss"]) and math.isfinite(metrics["test/loss"])


def test_eqr_training_is_reproducible(make_cfg) -> None:
    from scalar_ml.training.train import train

    overrides = [*tiny_for("counting"), "model=eqr", "seed=5"]
    first, second = train(make_cfg(overrides)), train(make_cfg(overrides))
    for key in ("train/loss", "val/loss", "test/loss"):
        assert first[key] == second[key], key
