"""``hydra/launcher=slurm`` submitted to a real SLURM cluster (one node, started by the fixture).

The module fixture starts munged, slurmctld and slurmd in a temporary directory
(:mod:`slurm_helpers`); ``.ci/run`` installs Debian's packages for it. Through
hydra-submitit-launcher's ``SlurmLauncher`` (``sbatch`` job arrays, ``srun`` steps) the tests run

- an ensemble grid ``python -m scalar_ml.sample -m physics.mu=0.5,0.6``: one array task per point;
- a seed sweep ``python train.py -m seed=1,2``;
- an Optuna study ``python train.py -m hparams_search=counting_eq`` whose trials are array tasks;
- ``trainer=ddp`` with ``tasks_per_node=2``: SLURM starts both ranks, Lightning takes them
  from SLURM's environment (``SLURMEnvironment``, nothing re-launched) and the run matches one
  process with the same global batch, as the gloo test in ``test_ddp.py`` does for ``ddp``.

Every job asks for one CPU and 1 GB (``hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=1``), so
two array tasks run side by side on a 2-core node. Each test checks with ``scontrol`` that the
array's tasks ran on the cluster and completed. Skipped, with the reason, where the cluster cannot
start (binaries missing, not root, a daemon failing); under ``REQUIRE_SERVICES=1`` (``.ci/run``)
those skips are failures (marker ``services``, ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from scaleout_helpers import REPO, SAMPLE_MU_GRID, TINY_TRAIN, env_for
from slurm_helpers import SlurmCluster, SlurmUnavailable, start_slurm_cluster

#: A real cluster: skipped with the reason where it cannot start, a failure under REQUIRE_SERVICES=1.
# Real services take a minute: slow, and run by .ci/run (marker ci) where they are installed.
pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.ci]

#: One CPU and 1 GB per job: two array tasks fit side by side on the CI's 2-core node.
SMALL_JOBS = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
#: A few batches of 4×4 counting data, two epochs.
SHORT_TRAINING = [
    *TINY_TRAIN,
    "data.n_train=16",
    "data.n_val=8",
    "data.n_test=8",
    "data.batch_size=8",
    "trainer.max_epochs=2",
]
#: A job's result file is written before its process exits; SLURM's record follows within seconds.
SETTLE_S = 30.0


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    """A running single-node cluster for the module (stopped and removed afterwards)."""
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason="hydra-submitit-launcher is not installed (pip install hydra-submitit-launcher)",
    )
    root = Path(tempfile.mkdtemp(prefix="scalar_ml_slurm_"))
    try:
        cluster = start_slurm_cluster(root)
    except SlurmUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"no SLURM cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _run(
    slurm: SlurmCluster, args: list[str], root: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS...`` in the repository with the cluster's SLURM_CONF."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={**env_for(root), **slurm.env()},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _array_tasks(slurm: SlurmCluster, sweep: Path) -> dict[str, dict[str, str]]:
    """The SLURM records of the sweep's jobs, by submitit job folder name.

    Asserts that SLURM knows every job submitit submitted and that each completed with exit code 0
    on the cluster's node (waiting up to ``SETTLE_S`` for records still running).
    """
    # submitit's job folders hold <job>_submitted.pkl: <array id>_<task id> for the tasks of an
    # array, the plain job id for a single job (an array's own folder holds only the sbatch script).
    folders = sorted(p.parent.name for p in (sweep / ".submitit").glob("*/*_submitted.pkl"))
    assert folders, f"no submitit jobs under {sweep}"
    job_ids = {name.split("_")[0] for name in folders}
    deadline = time.monotonic() + SETTLE_S
    while True:
        records: dict[str, dict[str, str]] = {}
        for job_id in job_ids:
            for rec in slurm.job_records(job_id):
                key = (
                    f"{rec['ArrayJobId']}_{rec['ArrayTaskId']}"
                    if "ArrayTaskId" in rec
                    else rec["JobId"]
                )
                records[key] = rec
        active = ("PENDING", "RUNNING", "COMPLETING")
        if all(r["JobState"] not in active for r in records.values()):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(records) == folders
    for name, rec in records.items():
        assert (rec["JobState"], rec["ExitCode"]) == ("COMPLETED", "0:0"), (name, rec)
        assert rec["NodeList"] == slurm.node
    return records


def test_sample_grid_runs_as_a_slurm_job_array(slurm: SlurmCluster, tmp_path: Path) -> None:
    """Two mu values -> one array of two tasks -> two summary.json with their own mu."""
    sweep = tmp_path / "sweep"
    proc = _run(
        slurm,
        [
            "-m",
            "scalar_ml.sample",
            "-m",
            *SMALL_JOBS,
            *SAMPLE_MU_GRID,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Submitit 'slurm' sweep output dir" in proc.stderr
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in (0, 1)]
    assert [s["params"]["mu"] for s in summaries] == [0.5, 0.6]
    assert all(s["n_configs"] == 50 and s["n"]["err"] > 0 for s in summaries)
    records = _array_tasks(slurm, sweep)
    assert sorted(r["ArrayTaskId"] for r in records.values()) == ["0", "1"]
    assert {r["NumCPUs"] for r in records.values()} == {"1"}


def test_train_seed_sweep_runs_as_slurm_array_tasks(slurm: SlurmCluster, tmp_path: Path) -> None:
    """train.py -m seed=1,2 on the cluster: each task's metrics.json has its own seed."""
    sweep = tmp_path / "sweep"
    proc = _run(
        slurm,
        [
            "train.py",
            "-m",
            *SMALL_JOBS,
            "seed=1,2",
            *SHORT_TRAINING,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert [m["seed"] for m in metrics] == [1, 2]
    assert len(_array_tasks(slurm, sweep)) == 2


def test_optuna_trials_run_as_slurm_array_tasks(slurm: SlurmCluster, tmp_path: Path) -> None:
    """An Optuna study with n_jobs=2: both trials of the batch are tasks of one array, complete."""
    import optuna

    sweep, db = tmp_path / "sweep", tmp_path / "study.db"
    proc = _run(
        slurm,
        [
            "train.py",
            "-m",
            "hparams_search=counting_eq",
            *SMALL_JOBS,
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2",
            f"hydra.sweeper.storage=sqlite:///{db}",
            *SHORT_TRAINING,
            "data.worms=[0,1]",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="counting_eq", storage=f"sqlite:///{db}")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    records = _array_tasks(slurm, sweep)
    assert len(records) == 2 and len({r["ArrayJobId"] for r in records.values()}) == 1


def test_ddp_ranks_from_slurm_match_one_process(slurm: SlurmCluster, tmp_path: Path) -> None:
    """trainer=ddp with 2 SLURM tasks = 1 process with the same global batch (float tolerance)."""
    from test_ddp import ATOL, DATA, GLOBAL_BATCH, RTOL

    single_dir = tmp_path / "single"
    single = _run(
        slurm,
        [
            "train.py",
            *TINY_TRAIN,
            *DATA,
            f"data.batch_size={GLOBAL_BATCH}",
            f"hydra.run.dir={single_dir}",
        ],
        tmp_path,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    sweep = tmp_path / "sweep"
    ddp = _run(
        slurm,
        [
            "train.py",
            "-m",
            *SMALL_JOBS,
            "hydra.launcher.tasks_per_node=2",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            *TINY_TRAIN,
            *DATA,
            f"data.batch_size={GLOBAL_BATCH // 2}",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    records = _array_tasks(slurm, sweep)
    assert [r["NumTasks"] for r in records.values()] == ["2"]
    log = (sweep / "0" / "train.log").read_text()
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log, log[-2000:]
    # Both ranks were started by srun (one per SLURM task), not by Lightning.
    job = sweep / ".submitit" / next(iter(records))
    rank_logs = sorted(job.glob("*_log.out"))
    assert len(rank_logs) == 2, rank_logs

    want = json.loads((single_dir / "metrics.json").read_text())
    got = json.loads((sweep / "0" / "metrics.json").read_text())
    assert want["global_step"] == got["global_step"] == 10
    for key in ("val/loss", "test/loss", "train/loss", "val/loss_best"):
        assert got[key] == pytest.approx(want[key], rel=RTOL, abs=ATOL), key
    w_want = torch.load(single_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    w_got = torch.load(sweep / "0" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for key, value in w_want.items():
        torch.testing.assert_close(w_got[key], value, rtol=RTOL, atol=ATOL, msg=key)
