"""Task 4 end to end: train.py trains it and reports F1, the EQ map network is translation
equivariant, translated training data move their maps along, evaluate.py writes its grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import TINY, WARNING_FILTERS

from scalar_ml.models import build_preset, translation_error
from scalar_ml.physics.observables import flux_divergence

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]


@pytest.mark.parametrize("family", ["eq", "st", "fl"])
def test_localisation_trains_and_reports_f1(make_cfg, family: str) -> None:
    from scalar_ml.training.train import train

    cfg = make_cfg(["task=localisation", f"model={family}", *TINY, "seed=0"])
    metrics = train(cfg)
    assert metrics["preset"] == f"localisation/{family}"
    for key in ("val/f1", "val/count_mse", "test/f1", "val/loss"):
        assert np.isfinite(metrics[key]), key
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["val/f1"] == metrics["val/f1"]


def test_the_eq_map_network_is_translation_equivariant() -> None:
    torch.manual_seed(0)
    net = build_preset("localisation/eq", dtype=torch.float64)
    for shape in ((8, 8), (6, 5), (12, 4)):
        x = torch.randint(-2, 3, (2, 4, *shape)).double()
        assert translation_error(net, x) < 1e-12
    st = build_preset("localisation/st", dtype=torch.float64)
    x = torch.randint(-2, 3, (2, 4, 8, 8)).double()
    assert translation_error(st, x, shifts=st.symmetry_shifts(8, 8)) < 1e-12
    assert translation_error(st, x, shifts=[(1, 0)]) > 1e-6  # negative control: odd shifts


def test_translated_training_data_move_their_maps_along(tiny_cache: Path) -> None:
    from scalar_ml.data.datamodules import LatticeDataModule

    dm = LatticeDataModule(
        task="localisation",
        points={"a": {"eta": 4.01, "lam": 1.0, "mu": 1.5}},
        worms=[0, 3],
        lattice={"nt": 8, "nx": 8},
        n_train=16,
        n_val=4,
        n_test=0,
        batch_size=8,
        translate=True,
        cache_dir=str(tiny_cache),
        sampler={"n_chains": 2, "n_therm": 20, "sweeps_between": 2, "progress": False},
    )
    dm.setup()
    for x, y in dm.train_dataloader():
        assert y.shape == (x.shape[0], 1, 8, 8)
        ends = np.abs(flux_divergence(x.numpy().astype(np.int64)))
        assert np.array_equal(y[:, 0].numpy(), ends)  # the label still marks the end points


def test_evaluate_writes_the_localisation_grid_with_example_figures(
    make_cfg, tiny_cache: Path, tmp_path: Path
) -> None:
    from app_helpers import compose_app
    from hydra.core.global_hydra import GlobalHydra

    from scalar_ml.evaluation.runner import evaluate
    from scalar_ml.training.train import train

    cfg = make_cfg(["task=localisation", "model=eq", *TINY, "seed=0"])
    train(cfg)
    GlobalHydra.instance().clear()
    out = tmp_path / "eval"
    ecfg = compose_app(
        "evaluate",
        [
            f"ckpt_path={cfg.paths.output_dir}",
            "grid=localisation_small",
            "grid.n_configs=4",
            "grid.worms=[0,2]",
            "sampler.n_chains=2",
            "sampler.n_therm=20",
            "sampler.sweeps_between=2",
            "sampler.progress=false",
            "progress=false",
        ],
        out,
        tiny_cache,
    )
    evaluate(ecfg)
    import pandas as pd

    df = pd.read_csv(out / "evaluation.csv")
    assert set(df["metric"]) == {
        "loss", "f1", "precision", "recall", "count_mse", "acc", "pred_mean", "pred_std",
    }  # fmt: skip
    assert set(zip(df["nt"], df["nx"], strict=True)) == {(8, 8), (16, 16)}
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert any(p.startswith("examples_") and "16x16" in p for p in plots)
    assert "loss_vs_size_localisation.png" in plots
