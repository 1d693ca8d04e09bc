"""DDP equivalence: 2 CPU processes (gloo) with per-rank batch B/2 train like 1 process with batch B.

``tests/training/test_train.py::test_ddp_config_trains_on_two_cpu_processes`` checks that
``trainer=ddp`` runs and that the ranks agree with each other; this test checks that they agree with
a single-process run with the same *global* batch: the data module's rank sharding (rank ``r``
takes positions ``r, r + 2, …`` of the epoch's seeded order, then cuts its own batches) makes the
union of the ranks' step-``b`` batches exactly the single process's batch ``b``, DDP averages the
ranks' mean gradients (= the global mean for equal per-rank batches) and the validation/test
metrics are weighted means synchronised over ranks. Only the float summation order differs.

Conditions of exact equivalence (used here): the number of training samples is divisible by the
number of ranks (otherwise the training order is padded by wrapping around, as DDP needs equal
step counts) and the global batch is divisible by the number of ranks. Validation batches of
unequal sizes (single process 4, 4, 4, 2; each rank 4, 3) check the weighted reduction, and
translation augmentation is on to check that the shifts are sharded with their samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from scaleout_helpers import TINY_TRAIN, run_cli

#: Relative tolerance of metrics and weights (float32, different summation order).
RTOL = 1e-5
ATOL = 1e-6
GLOBAL_BATCH = 16
DATA = [
    "data.worms=[0,1]",
    "data.n_train=40",  # 2 points: 80 training samples, 40 per rank, 5 global steps per epoch
    "data.n_val=7",  # 14 validation samples, 7 per rank
    "data.n_test=7",
    "data.eval_batch_size=4",
    "data.translate=true",
    "trainer.max_epochs=2",
    "seed=3",
]


def _train(root: Path, name: str, extra: list[str]) -> tuple[dict, dict[str, torch.Tensor], str]:
    run_dir = root / name
    proc = run_cli(["train.py", *TINY_TRAIN, *DATA, *extra, f"hydra.run.dir={run_dir}"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    state = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )["state_dict"]
    return metrics, state, (run_dir / "train.log").read_text()


DDP_OPTIONS = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, torch.Tensor], str]:
    """One 2-rank ``trainer=ddp`` run with per-rank batch B/2, shared by the tests below."""
    root = tmp_path_factory.mktemp("ddp_run")
    return _train(root, "ddp", [*DDP_OPTIONS, f"data.batch_size={GLOBAL_BATCH // 2}"])


@pytest.mark.slow
@pytest.mark.ci
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(
    tmp_path: Path, ddp_run: tuple[dict, dict[str, torch.Tensor], str]
) -> None:
    """Same validation/test loss and weights within float tolerance; the ranks agree."""
    single, w_single, _ = _train(tmp_path, "single", [f"data.batch_size={GLOBAL_BATCH}"])
    ddp, w_ddp, log = ddp_run
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log, log[-2000:]
    # 80 samples / 16 per global step = 5 steps per epoch in both runs.
    assert single["global_step"] == ddp["global_step"] == 10
    for key in ("val/loss", "test/loss", "train/loss", "val/loss_best"):
        assert ddp[key] == pytest.approx(single[key], rel=RTOL, abs=ATOL), key
    for key in ("val/acc", "test/acc"):
        assert ddp[key] == single[key], key
    assert w_single.keys() == w_ddp.keys()
    for key, value in w_single.items():
        torch.testing.assert_close(w_ddp[key], value, rtol=RTOL, atol=ATOL, msg=key)
    # both ranks report the same (synchronised) final metrics, from the same seed
    finals = [
        line.split("final metrics: ", 1)[1]
        for line in log.splitlines()
        if "final metrics: " in line
    ]
    assert len(finals) == 2 and finals[0] == finals[1], finals
    seeds = {
        line.split("Seed set to ")[1].strip() for line in log.splitlines() if "Seed set to" in line
    }
    assert seeds == {str(ddp["seed"])}


@pytest.mark.slow
@pytest.mark.ci
def test_ddp_spawn_records_progress_and_checkpoints_like_ddp(
    tmp_path: Path, ddp_run: tuple[dict, dict[str, torch.Tensor], str]
) -> None:
    """ddp_spawn (the strategy for multiruns) trains like ddp, and metrics.json records the fit.

    The spawned workers keep Lightning's counters and checkpoint paths to themselves; train.py takes
    them from the last checkpoint instead, so they equal those of a plain ddp run.
    """
    ddp, w_ddp, _ = ddp_run
    spawn, w_spawn, _ = _train(
        tmp_path,
        "spawn",
        [*DDP_OPTIONS, "trainer.strategy=ddp_spawn", f"data.batch_size={GLOBAL_BATCH // 2}"],
    )
    assert (spawn["epochs"], spawn["global_step"]) == (ddp["epochs"], ddp["global_step"]) == (2, 10)
    assert spawn["last_checkpoint"] == str(tmp_path / "spawn" / "checkpoints" / "last.ckpt")
    for key in ("val/loss", "test/loss"):
        assert spawn[key] == pytest.approx(ddp[key], rel=RTOL, abs=ATOL), key
    for key, value in w_ddp.items():
        torch.testing.assert_close(w_spawn[key], value, rtol=RTOL, atol=ATOL, msg=key)
