"""Config composition: every task × family composes, instantiates and runs fast_dev_run; bad input fails early."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from training_helpers import WARNING_FILTERS, tiny_for

from scalar_ml.paths import CONF_DIR
from scalar_ml.tasks import get_task, task_names

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]

TASKS = task_names()  # every registered task (the seed's three and localisation)
FAMILIES = ("eq", "st", "fl")


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_task_family_composes_instantiates_and_runs_fast_dev_run(
    make_cfg, task: str, family: str
) -> None:
    from scalar_ml.training.train import train

    cfg = make_cfg([f"task={task}", f"model={family}", *tiny_for(task), "debug=fdr"])
    assert cfg.task.name == task
    assert cfg.model.preset == cfg.task.presets[family]
    assert cfg.model.preset.startswith(f"{task}/{family}")
    expected_lattice = (60, 4) if task == "observables" else (8, 8)
    assert (cfg.lattice.nt, cfg.lattice.nx) == expected_lattice
    assert cfg.data._target_.endswith("LatticeDataModule") and cfg.data.task == task
    metrics = train(cfg)
    assert metrics["task"] == task and metrics["preset"] == cfg.model.preset
    for key in ("val/loss", "test/loss"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key])
    logged = {m.name for m in get_task(task).training_metrics()}
    assert {f"{split}/{name}" for split in ("val", "test") for name in logged} <= set(metrics)
    assert metrics["global_step"] == 1  # fast_dev_run: exactly one training batch
    assert (
        json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["preset"]
        == cfg.model.preset
    )


def test_presets_and_custom_layers(make_cfg) -> None:
    cfg = make_cfg(["model.preset=counting/eq_3", *tiny_for("counting")])
    assert instantiate(cfg.model).hparams["n_parameters"] == 308
    layers = (
        "model.layers=[{type: conv, kernel: 2, out: 4, bias: false}, {type: activation, name: leaky_relu},"
        " {type: global_pool, mode: sum}, {type: linear, out: 1, bias: false}]"
    )
    cfg = make_cfg(["model=custom", layers, *tiny_for("counting")])
    module = instantiate(cfg.model)
    assert module.hparams["preset"] is None and module.hparams["n_parameters"] == 4 * 4 * 4 + 4
    cfg = make_cfg(["model=custom", *tiny_for("counting")])
    with pytest.raises(MissingMandatoryValue, match="layers"):
        instantiate(cfg.model)


def test_optimizer_and_scheduler_groups(make_cfg) -> None:
    cfg = make_cfg(["model/optimizer=adamw", "model/scheduler=cosine", "model.optimizer.lr=0.01"])
    module = instantiate(cfg.model)
    conf = module.configure_optimizers()
    assert type(conf["optimizer"]).__name__ == "AdamW" and conf["optimizer"].defaults["lr"] == 0.01
    assert type(conf["lr_scheduler"]["scheduler"]).__name__ == "CosineAnnealingLR"
    assert conf["lr_scheduler"]["scheduler"].T_max == cfg.trainer.max_epochs
    # the counting task's recipe: Adam with cosine decay, gradients clipped at norm 1
    counting = make_cfg([])
    default = instantiate(counting.model).configure_optimizers()
    assert type(default["optimizer"]).__name__ == "Adam"
    assert type(default["lr_scheduler"]["scheduler"]).__name__ == "CosineAnnealingLR"
    assert counting.trainer.gradient_clip_val == 1.0
    # the other tasks, and counting with the recipe removed: plain Adam, no clipping
    for overrides in (["task=observables"], ["~model/scheduler", "trainer.gradient_clip_val=null"]):
        cfg = make_cfg(overrides)
        assert type(instantiate(cfg.model).configure_optimizers()).__name__ == "Adam", overrides
        assert cfg.trainer.get("gradient_clip_val") is None, overrides


def test_physics_lattice_and_logger_overrides_compose(make_cfg) -> None:
    cfg = make_cfg(
        ["task=observables", "lattice=100x5", "data.physics.eta=4.04", "data.mu_values=[0.9,1.0]"]
    )
    assert (cfg.data.lattice.nt, cfg.data.lattice.nx) == (100, 5)
    dm = instantiate(cfg.data)
    assert [p.as_dict() for p in dm.points.values()] == [
        {"eta": 4.04, "lam": 1.0, "mu": 0.9},
        {"eta": 4.04, "lam": 1.0, "mu": 1.0},
    ]
    cfg = make_cfg(
        ["task=counting", "data.points.a.mu=1.25", "physics@data.points.b=free", "data.worms=[0,3]"]
    )
    dm = instantiate(cfg.data)
    assert dm.points["a"].mu == 1.25 and dm.points["b"].lam == 0.0 and dm.worms == [0, 3]
    cfg = make_cfg(["logger=many"])
    assert set(cfg.logger) == {"tensorboard", "csv", "wandb"}
    assert cfg.logger.wandb.offline is True
    assert set(make_cfg(["logger=[csv,tensorboard]"]).logger) == {"csv", "tensorboard"}
    assert not make_cfg(["logger=none"]).logger
    cfg = make_cfg(["callbacks=[default,early_stopping]"])
    assert {"model_checkpoint", "early_stopping", "rich_progress_bar"} <= set(cfg.callbacks)
    assert "=" not in cfg.callbacks.model_checkpoint.filename
    assert cfg.callbacks.model_checkpoint.auto_insert_metric_name is False


@pytest.mark.parametrize("name", ["cpu", "gpu", "ddp"])
def test_trainer_configs_compose(make_cfg, name: str) -> None:
    cfg = make_cfg([f"trainer={name}"])
    assert cfg.trainer._target_.endswith("Trainer")
    assert cfg.trainer.accelerator == ("cpu" if name == "cpu" else "gpu")
    if name == "ddp":
        assert cfg.trainer.strategy == "ddp" and cfg.trainer.use_distributed_sampler is False
    assert cfg.trainer.precision == "32-true"
    mixed = make_cfg([f"trainer={name}", "trainer.precision=bf16-mixed"])
    assert mixed.trainer.precision == "bf16-mixed"  # the mixed-precision option


@pytest.mark.parametrize("name", ["default", "fdr", "overfit", "limit"])
def test_debug_configs_compose(make_cfg, name: str) -> None:
    cfg = make_cfg([f"debug={name}"])
    assert cfg.task_name == "debug" and not cfg.logger
    assert cfg.data.n_train <= 128


def test_unknown_task_or_model_lists_the_valid_choices() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        with pytest.raises(MissingConfigException) as task_err:
            compose("train", overrides=["task=countng"])
        with pytest.raises(MissingConfigException) as model_err:
            compose("train", overrides=["model=eqq"])
    GlobalHydra.instance().clear()
    assert "Available options in 'task'" in str(task_err.value)
    for name in ("counting", "detection", "observables"):
        assert name in str(task_err.value)
    for name in ("eq", "st", "fl", "custom"):
        assert f"\t{name}\n" in str(model_err.value) + "\n"


def test_unknown_preset_lists_the_presets(make_cfg) -> None:
    cfg = make_cfg(["model.preset=counting/eq_9"])
    with pytest.raises(Exception, match=r"unknown preset 'counting/eq_9'.*counting/eq_1"):
        instantiate(cfg.model)


# -- bad input: clear errors before any sampling or training; nothing overwritten -----------------------
@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (
            ["model=fl", "lattice=16x16"],
            ValueError,
            r"counting/fl_1 takes only 8×8 lattices.*16×16",
        ),
        (["task=observables", "model=fl", "lattice=100x5"], ValueError, r"60×4 lattices.*100×5"),
        (["data.worms=[0,33]"], ValueError, r"33 open worms need 66 distinct end points.*8x8"),
        (
            ["task=detection", "lattice.nt=4", "lattice.nx=4", "data.worms=[9]"],
            ValueError,
            "at most 8 worms",
        ),
        (["data.batch_size=0"], ValueError, "batch_size must be an integer >= 1, got 0"),
        (["data.n_val=0"], ValueError, "n_val must be an integer >= 1"),
        (["data.points.a.lam=-1"], ValueError, "lam must be >= 0"),
        (["seed=-3"], ValueError, "seed must be null or an integer"),
        (["cpu_threads=0"], ValueError, "cpu_threads must be null or an integer >= 1"),
        (["train=false"], ValueError, "train=false evaluates a checkpoint: give ckpt_path"),
        (["ckpt_path=/nonexistent/run/checkpoints/last.ckpt"], ValueError, "does not exist"),
        (
            ["task=observables", "model.preset=counting/eq_1"],
            ValueError,
            r"counting/eq_1 has 1 output\(s\) per configuration but task .observables. needs 2 "
            r"outputs per configuration \(n, phi2\)",
        ),
    ],
)
def test_bad_input_fails_before_any_work(
    make_cfg, tmp_path: Path, overrides: list[str], error: type, message: str
) -> None:
    from scalar_ml.training.train import train

    empty_cache = tmp_path / "empty_cache"
    empty_cache.mkdir()
    run_dir = tmp_path / "bad_run"
    cfg = make_cfg([*TINY_NO_DATA, *overrides], run_dir=run_dir, cache=empty_cache)
    with pytest.raises(error, match=message):
        train(cfg)
    assert _files(empty_cache) == []  # nothing was sampled
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()


TINY_NO_DATA = ["trainer.max_epochs=1", "logger=none"]


def test_existing_results_are_never_overwritten(make_cfg, tmp_path: Path) -> None:
    from scalar_ml.training.train import train

    run_dir = tmp_path / "taken"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.json").write_text('{"val/loss": 0.5}\n')
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"old")
    cfg = make_cfg(tiny_for("counting"), run_dir=run_dir)
    with pytest.raises(ValueError, match="already holds results"):  # a UserError
        train(cfg)
    assert (run_dir / "metrics.json").read_text() == '{"val/loss": 0.5}\n'
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"old"


def test_resolved_config_has_no_missing_values(make_cfg) -> None:
    cfg = make_cfg([])
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
