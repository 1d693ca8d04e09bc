"""train(cfg): reproducibility, exact resume, recorded seeds, divergence, outputs, wandb, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from app_helpers import subprocess_env
from training_helpers import REPO, TINY, WARNING_FILTERS, tiny_for

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]

#: Keys of metrics.json that legitimately differ between two identical runs.
VOLATILE = {"elapsed_s", "run_dir", "best_checkpoint", "last_checkpoint", "evaluated_checkpoint"}


def _stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_same_seed_twice_gives_identical_metrics_and_a_drawn_seed_is_recorded(make_cfg) -> None:
    from scalar_ml.training.train import train

    overrides = [*TINY, "trainer.max_epochs=2", "data.translate=true", "seed=null"]
    first = make_cfg(overrides)
    m1 = train(first)
    run1 = Path(first.paths.output_dir)
    seed = m1["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    # The drawn seed is recorded everywhere: resolved config, metrics.json, checkpoints.
    assert yaml.safe_load((run1 / "config_resolved.yaml").read_text())["seed"] == seed
    assert (
        yaml.safe_load((run1 / "config_resolved.yaml").read_text())["data"]["shuffle_seed"] == seed
    )
    assert json.loads((run1 / "metrics.json").read_text())["seed"] == seed
    ckpt = torch.load(run1 / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["scalar_ml"]["seed"] == seed
    assert ckpt["scalar_ml"]["data"]["task"] == "counting"

    second = make_cfg([*overrides[:-1], f"seed={seed}"])
    m2 = train(second)
    assert _stable(m1) == _stable(m2)
    _assert_same_weights(
        run1 / "checkpoints" / "last.ckpt",
        Path(second.paths.output_dir) / "checkpoints" / "last.ckpt",
    )

    other = train(make_cfg([*overrides[:-1], f"seed={seed + 1}"]))
    assert other["val/loss"] != m1["val/loss"]  # the seed matters (init, batch order, shifts)


def test_seed_zero_works(make_cfg) -> None:
    from scalar_ml.training.train import train

    cfg = make_cfg([*TINY, "seed=0"])
    assert train(cfg)["seed"] == 0
    assert (
        yaml.safe_load((Path(cfg.paths.output_dir) / "config_resolved.yaml").read_text())["seed"]
        == 0
    )


def test_resume_from_last_checkpoint_equals_an_uninterrupted_run(make_cfg, tmp_path: Path) -> None:
    from scalar_ml.training.train import train

    # The step scheduler makes the second epoch's learning rate absurd (0.5): its val/loss is worse, so
    # the best epoch is the first one, which the resumed run must find in the run it resumed from.
    common = [
        *TINY,
        "data.translate=true",
        "model/scheduler=step",
        "model.scheduler.step_size=1",
        "model.scheduler.gamma=500",
    ]
    full = make_cfg([*common, "seed=0", "trainer.max_epochs=2"], run_dir=tmp_path / "full")
    m_full = train(full)
    first = make_cfg([*common, "seed=0", "trainer.max_epochs=1"], run_dir=tmp_path / "first")
    train(first)
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    before = {p: p.read_bytes() for p in (tmp_path / "first").rglob("*") if p.is_file()}
    # Resume with seed: null -> the checkpoint's seed is used.
    resumed = make_cfg(
        [*common, "seed=null", "trainer.max_epochs=2", f"ckpt_path={last}"],
        run_dir=tmp_path / "resumed",
    )
    m_res = train(resumed)
    assert m_res["seed"] == 0 and m_res["epochs"] == m_full["epochs"] == 2
    assert m_res["global_step"] == m_full["global_step"]
    assert Path(m_full["best_checkpoint"]).name == "epoch_000.ckpt"
    assert m_res["best_checkpoint"] == str(tmp_path / "first" / "checkpoints" / "epoch_000.ckpt")
    for key in ("train/loss", "val/loss", "val/loss_best", "test/loss", "test/acc"):
        assert m_res[key] == m_full[key], key
    _assert_same_weights(
        tmp_path / "full" / "checkpoints" / "last.ckpt",
        tmp_path / "resumed" / "checkpoints" / "last.ckpt",
    )
    a = torch.load(
        tmp_path / "full" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    b = torch.load(
        tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    for sa, sb in zip(
        a["optimizer_states"][0]["state"].values(),
        b["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        for key in sa:
            assert torch.equal(torch.as_tensor(sa[key]), torch.as_tensor(sb[key]))
    assert a["lr_schedulers"] == b["lr_schedulers"]
    after = {p: p.read_bytes() for p in (tmp_path / "first").rglob("*") if p.is_file()}
    assert after == before  # the run resumed from is left exactly as it was


def test_outputs_checkpoint_names_and_metrics_file(make_cfg) -> None:
    from scalar_ml.training.train import train

    cfg = make_cfg([*TINY, "seed=3", "trainer.max_epochs=2", "logger=[tensorboard,csv]"])
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in names and all("=" not in n for n in names)
    best = [n for n in names if n.startswith("epoch_")]
    assert len(best) == 1 and best[0] in {"epoch_000.ckpt", "epoch_001.ckpt"}
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["best_checkpoint"] == str(run / "checkpoints" / best[0])
    assert on_disk["evaluated_checkpoint"] == on_disk["best_checkpoint"]
    # val/* are re-evaluated on the best checkpoint: its loss is the best validation loss.
    assert on_disk["val/loss"] == pytest.approx(on_disk["val/loss_best"], rel=1e-6)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "csv" / "metrics.csv").exists()
    # Checkpoints load safely (weights only) and rebuild the network from hparams.spec.
    from scalar_ml.training.module import LatticeModule

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["preset"] == "counting/eq_1"
    module = LatticeModule(
        task=ckpt["hyper_parameters"]["task"], spec=ckpt["hyper_parameters"]["spec"]
    )
    module.load_state_dict(ckpt["state_dict"])
    assert LatticeModule.load_from_checkpoint(
        run / "checkpoints" / "last.ckpt", weights_only=True
    ).hparams["spec"]
    # train=false only evaluates a checkpoint: the best one reproduces the run's final metrics.
    again = train(make_cfg([*TINY, "train=false", f"ckpt_path={on_disk['best_checkpoint']}"]))
    for key in ("val/loss", "val/acc", "test/loss", "test/acc"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-6), key
    assert again["evaluated_checkpoint"] == on_disk["best_checkpoint"]


def test_divergence_stops_the_run_and_returns_a_finite_penalty(make_cfg) -> None:
    from scalar_ml.training.module import DivergedError
    from scalar_ml.training.train import run, train

    overrides = [
        *TINY,
        "seed=0",
        "trainer.max_epochs=3",
        "model/optimizer=sgd",
        "model.optimizer.lr=1e30",
    ]
    cfg = make_cfg(overrides)
    with pytest.raises(DivergedError, match=r"training loss became (nan|inf)"):
        train(cfg)
    recorded = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert recorded["diverged"] is True and "lower the learning rate" in recorded["error"]
    assert run(make_cfg([*overrides, "divergence_penalty=12345"])) == 12345.0


def test_unbuildable_network_fails_loudly_or_returns_the_search_penalty(make_cfg) -> None:
    from scalar_ml.models.spec import SpecError
    from scalar_ml.training.train import run

    # A 9×9 kernel does not fit the 8×8 training lattice: refused before any data are loaded.
    layers = (
        "model.layers=[{type: conv, kernel: 9, out: 2, bias: false},"
        " {type: global_pool, mode: sum}, {type: linear, out: 1, bias: false}]"
    )
    overrides = [*TINY, "seed=0", "model=custom", "model.family=eq", layers]
    with pytest.raises(ValueError, match="kernel") as refused:  # a UserError caused by a SpecError
        run(make_cfg(overrides))
    assert isinstance(refused.value.__cause__, SpecError)
    assert run(make_cfg([*overrides, "invalid_architecture_penalty=777"])) == 777.0


def test_run_returns_the_optimized_metric(make_cfg) -> None:
    from scalar_ml.training.train import run

    cfg = make_cfg([*TINY, "seed=1", "optimized_metric=test/loss"])
    value = run(cfg)
    assert (
        value == json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["test/loss"]
    )
    nonsense = make_cfg([*TINY, "seed=1", "optimized_metric=val/nonsense"])
    with pytest.raises(ValueError, match=r"'val/nonsense' is not computed.*val/loss"):
        run(nonsense)
    assert not (Path(nonsense.paths.output_dir) / "metrics.json").exists()  # refused before work


def test_wandb_offline_run_lands_in_the_run_dir_and_is_finished(
    make_cfg, tmp_path: Path, monkeypatch
) -> None:
    wandb = pytest.importorskip("wandb")
    from scalar_ml.training.train import train

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg([*TINY, "seed=0", "logger=wandb"])
    train(cfg)
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert wandb.run is None  # finished: the next job starts its own run


def test_quickstart_cli_writes_checkpoint_and_metrics(tiny_cache: Path, tmp_path: Path) -> None:
    """The quickstart of docs/training.md, through the real CLI, with tiny data appended."""
    run_dir = tmp_path / "quickstart"
    cmd = [
        sys.executable,
        "train.py",
        "task=counting",
        "model=eq",
        *tiny_for("counting"),
        "seed=0",
        f"hydra.run.dir={run_dir}",
        "logger=tensorboard",
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
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seed"] == 0 and metrics["task"] == "counting" and "test/loss" in metrics
    assert (run_dir / ".hydra" / "config.yaml").exists() and (
        run_dir / "config_resolved.yaml"
    ).exists()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_ddp_config_trains_on_two_cpu_processes(tiny_cache: Path, tmp_path: Path) -> None:
    """trainer=ddp with the gloo backend on CPU: ranks share the seed and the run directory."""
    run_dir = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "train.py",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        *TINY,
        "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=subprocess_env(tiny_cache, tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # 64 training samples, 32 per rank, batch 16: 2 steps per epoch on every rank.
    assert metrics["global_step"] == 4 and metrics["epochs"] == 2
    log = (run_dir / "train.log").read_text()
    finals = [
        line.split("final metrics: ", 1)[1]
        for line in log.splitlines()
        if "final metrics: " in line
    ]
    assert len(finals) == 2 and finals[0] == finals[1]  # both ranks: same (synchronised) metrics
    seeds = {
        line.split("Seed set to ")[1].strip() for line in log.splitlines() if "Seed set to" in line
    }
    assert seeds == {str(metrics["seed"])}
