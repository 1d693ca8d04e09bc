"""Training on a 3D lattice (``python train.py task=counting model=eq lattice=8x8x8``, here on 4x4x4)
and evaluating the checkpoints over 3D shapes (and a 2D lattice, where they do not apply)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from app_helpers import compose_app
from evaluation_helpers import SHORT_CHAINS, TINY_SAMPLER, TINY_TRAIN
from hydra.core.global_hydra import GlobalHydra

pytestmark = pytest.mark.filterwarnings(SHORT_CHAINS)

POINTS_3D = ["data.points.a.eta=6.25", "data.points.b.eta=6.01"]  # (6.25, 1, 1), (6.01, 1, 1.5)


@pytest.fixture(scope="module")
def runs_3d(tmp_path_factory: pytest.TempPathFactory, eval_cache: Path) -> dict[str, Path]:
    from scalar_ml.training.train import train

    parent = tmp_path_factory.mktemp("counting_3d")
    runs = {}
    for i, family in enumerate(("eq", "fl")):
        run_dir = parent / str(i)
        overrides = [
            "task=counting", f"model={family}", "lattice=8x8x8", "lattice.shape=[4,4,4]",
            "seed=0", *POINTS_3D, *TINY_TRAIN,
        ]  # fmt: skip
        if family == "fl":  # the lifted fl preset takes 8x8x8 only: train it there
            overrides.remove("lattice.shape=[4,4,4]")
        train(compose_app("train", overrides, run_dir, eval_cache))
        runs[family] = run_dir
    GlobalHydra.instance().clear()
    return runs


def test_training_on_a_3d_lattice_uses_the_lifted_preset(runs_3d) -> None:
    ckpt = torch.load(runs_3d["eq"] / "checkpoints" / "last.ckpt", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["preset"] == "counting/eq_1" and hp["spec"]["dims"] == 3
    assert hp["spec"]["in_channels"] == 6 and hp["n_parameters"] == 3400
    fl = torch.load(runs_3d["fl"] / "checkpoints" / "last.ckpt", weights_only=True)
    assert fl["hyper_parameters"]["spec"]["input_size"] == [8, 8, 8]


def test_evaluation_over_3d_shapes(runs_3d, make_eval_cfg) -> None:
    from scalar_ml.evaluation.runner import evaluate

    parent = runs_3d["eq"].parent
    grid = [
        "grid=counting_small", "grid.lattices=[4x4x4,6x4x5,8x8x8,8x8]", "grid.worms=[0,2]",
        "grid.n_configs=8", "grid.points=[{eta: 6.25, lam: 1.0, mu: 1.0}]",
    ]  # fmt: skip
    cfg = make_eval_cfg([*TINY_SAMPLER, f"ckpt_path={parent}", *grid])
    evaluate(cfg)
    df = pd.read_csv(Path(cfg.paths.output_dir) / "evaluation.csv")
    loss = df[df["metric"] == "loss"]
    assert list(dict.fromkeys(loss["lattice"])) == ["4x4x4", "6x4x5", "8x8x8", "8x8"]
    three = loss[loss["lattice"] != "8x8"]
    assert three["nx"].isna().all() and set(three["nt"]) == {4, 6, 8}
    eq, fl = loss[loss["family"] == "eq"], loss[loss["family"] == "fl"]
    assert set(eq["train_lattice"]) == {"4x4x4"} and set(fl["train_lattice"]) == {"8x8x8"}
    ok = eq[eq["lattice"] != "8x8"]
    assert (ok["status"] == "ok").all() and ok["value"].map(math.isfinite).all()
    # a 3D network on a 2D lattice, an fl network on another size: not applicable, with reasons
    flat = loss[loss["lattice"] == "8x8"]
    assert (flat["status"] == "not applicable").all()
    assert flat["note"].str.contains("3-dimensional network and a 2-dimensional lattice").all()
    other = fl[fl["lattice"].isin(["4x4x4", "6x4x5"])]
    assert (other["status"] == "not applicable").all() and other["note"].str.contains("8×8×8").all()
    assert (fl[fl["lattice"] == "8x8x8"]["status"] == "ok").all()
    summary = pd.read_csv(Path(cfg.paths.output_dir) / "summary.csv").set_index("preset")
    assert summary.loc["counting/eq_1", "train_lattice"] == "4x4x4"
    plots = Path(cfg.paths.output_dir) / "plots"
    assert (plots / "loss_vs_size_counting.png").is_file()
    by_size = pd.read_csv(plots / "loss_vs_size_counting.csv")
    assert set(by_size["lattice"]) >= {"4x4x4", "6x4x5", "8x8x8"}
