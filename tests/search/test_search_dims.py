"""The architecture search on a 3D lattice: points become 3D networks, and a real sweep runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalar_ml.models import build_model, count_parameters
from scalar_ml.search.space import ARCH_DEFAULTS, InvalidArchitectureError, arch_spec

REPO = Path(__file__).resolve().parents[2]


def test_a_point_on_a_3d_lattice_is_a_3d_network() -> None:
    arch = {**ARCH_DEFAULTS, "n_conv": 2, "kernel_0": 2, "kernel_1": 1, "channels_0": 4,
            "channels_1": 2, "n_linear": 1, "bias": False, "global_pool": "sum"}  # fmt: skip
    spec = arch_spec(arch, "eq", task="counting", lattice_size=[4, 4, 4])
    assert spec["dims"] == 3
    assert spec["description"].startswith("Conv2x2x2(6,4)")
    model = build_model(spec)
    assert count_parameters(model) == 6 * 4 * 8 + 4 * 2 + 2  # no bias anywhere
    fl = arch_spec({**arch, "pool_0": "avg"}, "fl", task="counting", lattice_size=[4, 4, 4])
    assert fl["input_size"] == [4, 4, 4]
    dense = next(layer for layer in build_model(fl).spec["layers"] if layer["type"] == "linear")
    assert dense["in"] == 2 * 2 * 2 * 2  # 2 channels x 2x2x2 sites after the pooling
    with pytest.raises(InvalidArchitectureError, match="does not fit the 2×2×2 training lattice"):
        arch_spec({**arch, "kernel_0": 3}, "eq", task="counting", lattice_size=[2, 2, 2])


def test_the_searchable_model_takes_the_lattice_shape(tmp_path: Path) -> None:
    from app_helpers import compose_app
    from hydra.core.global_hydra import GlobalHydra

    try:
        for lattice, shape in (("lattice=8x8x8", [8, 8, 8]), ("lattice=60x4", [60, 4])):
            cfg = compose_app("train", ["model=searchable", lattice], tmp_path, tmp_path)
            assert list(cfg.model.lattice_size) == shape
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.slow
def test_a_sweep_runs_on_a_3d_lattice(tmp_path: Path) -> None:
    """python train.py -m hparams_search=counting_eq lattice=8x8x8 (here 4x4x4, 2 tiny trials)."""
    command = [
        sys.executable, "train.py", "-m", "hparams_search=counting_eq", "lattice=8x8x8",
        "lattice.shape=[4,4,4]", "hydra.sweeper.n_trials=2", "data.n_train=16", "data.n_val=8",
        "data.n_test=8", "data.worms=[0,1]", "trainer.max_epochs=1", "logger=none",
        "callbacks.rich_progress_bar=null", "sampler.progress=false", "sampler.n_chains=2",
        "sampler.n_therm=20", "sampler.sweeps_between=2", f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    env = {**os.environ, "SCALAR_ML_DATA_DIR": str(tmp_path / "data"), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    search = yaml.safe_load((tmp_path / "sweep" / "search.yaml").read_text())
    assert search["lattice_size"] == [4, 4, 4]
    resolved = sorted((tmp_path / "sweep").glob("*/config_resolved.yaml"))
    assert len(resolved) == 2
    for path in resolved:
        cfg = yaml.safe_load(path.read_text())
        assert cfg["model"]["lattice_size"] == [4, 4, 4] and cfg["model"]["dims"] == 3
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_value"] < 1.0e6  # a real loss, not the penalty of a network that fails
