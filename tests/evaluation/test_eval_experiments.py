"""Every experiment= config composes, runs with fast_dev_run, and its reproduce section is consistent."""

from __future__ import annotations

import pytest
from evaluation_helpers import SHORT_CHAINS, TINY_TRAIN
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from scalar_ml.evaluation.grid import load_grid
from scalar_ml.evaluation.reproduce import SCALES, experiment_names, load_plans
from scalar_ml.paths import CONF_DIR
from scalar_ml.physics.params import Lattice

EXPERIMENTS = experiment_names()

pytestmark = pytest.mark.filterwarnings(SHORT_CHAINS)

#: What each experiment trains on (task, training lattice).
EXPECTED = {
    "obs_samples": ("observables", (60, 4)),
    "obs_sizes": ("observables", (60, 4)),
    "obs_extrapolation": ("observables", (60, 4)),
    "obs_one_phase": ("observables", (60, 4)),
    "detection_generalization": ("detection", (8, 8)),
    "counting_generalization": ("counting", (8, 8)),
    "localisation_generalization": ("localisation", (8, 8)),  # task 4, not in the seed
    "counting_generalization_3d": ("counting", (8, 8, 8)),  # 2+1D, not in the seed
    "obs_sizes_3d": ("observables", (60, 4, 4)),  # 2+1D, not in the seed
    "symmetry_samples": ("observables", (60, 4)),  # the symmetry study (issue 15)
    "symmetry_detection": ("detection", (8, 8)),
    "symmetry_counting": ("counting", (8, 8)),
    "symmetry_counting_long": ("counting", (8, 8)),
}


def test_every_experiment_config_is_listed() -> None:
    on_disk = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert sorted(EXPERIMENTS) == on_disk == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_runs_fast_dev_run(name, eval_cache, tmp_path) -> None:
    from app_helpers import compose_app

    from scalar_ml.training.train import train

    task, lattice = EXPECTED[name]
    tiny = [*TINY_TRAIN, "debug=fdr"]
    if task == "observables":
        tiny.append("data.mu_values=[0.95,1.05]")  # two ensembles instead of five
    cfg = compose_app(
        "train", [f"experiment={name}", "seed=0", *tiny], tmp_path / "run", eval_cache
    )
    try:
        assert cfg.task.name == task
        assert Lattice.parse(OmegaConf.to_container(cfg.lattice)).shape == lattice
        assert cfg.reproduce.grid and name in cfg.tags
        metrics = train(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert metrics["task"] == task and metrics["global_step"] == 1
    assert metrics["val/loss"] == metrics["val/loss"]  # not NaN


@pytest.mark.parametrize("scale", SCALES)
def test_reproduce_plans_are_consistent(scale, tmp_path) -> None:
    """Every scale of every experiment names an existing grid of the right task; reuse is ordered."""
    plans = load_plans(list(EXPERIMENTS), scale, tmp_path)
    assert [p.name for p in plans] == list(EXPERIMENTS)
    for plan in plans:
        assert load_grid(plan.grid).task == plan.task == EXPECTED[plan.name][0]
        assert plan.figures and plan.title and plan.seed_result
        if plan.train_from:
            assert plan.train_command() is None
            assert plan.train_dir == tmp_path / plan.train_from / "train"
        else:
            cmd = plan.train_command()
            assert cmd is not None and f"experiment={plan.name}" in cmd and "-m" in cmd
        ecmd = plan.evaluate_command()
        assert f"grid={plan.grid}" in ecmd and f"ckpt_path={plan.train_dir}" in ecmd
        if scale == "full":  # the configs as written; reused trainings only select their variant
            assert plan.train_overrides == []
            assert all(o.startswith("select=") for o in plan.evaluate_overrides)


def test_reproduce_refuses_unknown_or_unordered(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown experiment"):
        load_plans(["nope"], "reduced", tmp_path)
    with pytest.raises(ValueError, match="reuses the trainings of obs_samples"):
        load_plans(["obs_extrapolation"], "reduced", tmp_path)
    with pytest.raises(ValueError, match="scale"):
        load_plans(["obs_sizes"], "huge", tmp_path)


def test_reproduce_dry_run_prints_the_commands(capsys, tmp_path) -> None:
    from scalar_ml.evaluation.reproduce import main

    argv = ["--dry-run", "--out", str(tmp_path), "--experiments", "obs_samples,obs_sizes"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # train obs_samples, evaluate it, evaluate obs_sizes on obs_samples' largest-n_train runs
    assert len(lines) == 3
    assert "train.py -m experiment=obs_samples" in lines[0]
    assert f"ckpt_path={tmp_path}/obs_samples/train" in lines[2]
    assert "grid=observables " in lines[2] and "data.n_train=320" in lines[2]
    assert not any(tmp_path.iterdir())  # nothing run
