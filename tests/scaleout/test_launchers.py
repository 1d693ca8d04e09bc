"""Cluster launch configs: hydra/launcher=slurm|local (hydra-submitit-launcher) compose and run.

- ``hydra/launcher=slurm`` composes with partition, time, GPUs and array parallelism as overrides
  (for ``train.py`` and ``python -m scalar_ml.sample``); nothing is submitted here (jobs on a real
  one-node cluster: ``test_slurm.py``);
- a 2-job multirun of ``python -m scalar_ml.sample -m physics.mu=0.5,0.6`` through the local submitit
  launcher: each job runs in its own submitit process and writes its own summary.json;
- (slow) a 2-seed ``train.py`` multirun through the same launcher.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from scaleout_helpers import SAMPLE_MU_GRID, TINY_TRAIN, run_cli

pytest.importorskip(
    "hydra_plugins.hydra_submitit_launcher",
    reason="hydra-submitit-launcher is not installed (pip install hydra-submitit-launcher)",
)


def _submitit_jobs(sweep: Path) -> list[Path]:
    """The job folders submitit wrote under ``<sweep>/.submitit`` (one per job, named by job id)."""
    return sorted(p for p in (sweep / ".submitit").iterdir() if p.is_dir() and p.name.isdigit())


@pytest.mark.parametrize("app", [["train.py"], ["-m", "scalar_ml.sample"]])
def test_slurm_launcher_composes_with_cluster_overrides(app: list[str], tmp_path: Path) -> None:
    """The documented overrides land in the SlurmLauncher config (printed with --cfg hydra)."""
    proc = run_cli(
        [
            *app,
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=120",
            "hydra.launcher.gpus_per_node=4",
            "hydra.launcher.array_parallelism=8",
            "--cfg",
            "hydra",
        ],
        tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    launcher = yaml.safe_load(proc.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["partition"], launcher["timeout_min"]) == ("gpu", 120)
    assert (launcher["gpus_per_node"], launcher["array_parallelism"]) == (4, 8)


def test_sample_multirun_through_the_local_submitit_launcher(tmp_path: Path) -> None:
    """Two mu values -> two submitit jobs -> two summary.json with their own mu."""
    sweep = tmp_path / "sweep"
    proc = run_cli(
        [
            "-m",
            "scalar_ml.sample",
            "-m",
            "hydra/launcher=local",
            *SAMPLE_MU_GRID,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in proc.stderr
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in (0, 1)]
    assert [s["params"]["mu"] for s in summaries] == [0.5, 0.6]
    for s in summaries:
        assert s["n_configs"] == 50 and s["lattice"] == {"nt": 4, "nx": 4}
        assert 0.0 <= s["n"]["mean"] and s["n"]["err"] > 0
    # Both ensembles went to the cache under SCALAR_ML_DATA_DIR.
    assert {s["cache_file"] for s in summaries} <= {p.name for p in (tmp_path / "data").rglob("*")}
    # One submitit job (own process, own id) per Hydra job, each with its pickled result.
    jobs = _submitit_jobs(sweep)
    assert len(jobs) == 2
    for job in jobs:
        assert (job / f"{job.name}_0_result.pkl").is_file()


@pytest.mark.slow
def test_train_seed_sweep_through_the_local_submitit_launcher(tmp_path: Path) -> None:
    """train.py -m seed=1,2 as two local submitit jobs: each job's metrics.json has its own seed."""
    sweep = tmp_path / "sweep"
    proc = run_cli(
        [
            "train.py",
            "-m",
            "hydra/launcher=local",
            "seed=1,2",
            *TINY_TRAIN,
            "data.n_train=16",
            "data.n_val=8",
            "data.n_test=8",
            "data.batch_size=8",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seeds = [json.loads((sweep / str(i) / "metrics.json").read_text())["seed"] for i in (0, 1)]
    assert seeds == [1, 2]
    assert len(_submitit_jobs(sweep)) == 2
