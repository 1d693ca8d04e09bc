"""GPU check: training samples/s of every task's EQ preset in fp32 and bf16-mixed, and the data rate.

For each task (observables, detection, counting) the data module and the model are composed from
``conf/train.yaml`` exactly as ``python train.py task=<task> model=eq`` would (the task's default
lattice, physics points and preset), with a reduced ``data.n_train`` per point. Reported per task:

* **cache -> tensors** (configurations/s): ``prepare_data()`` + ``setup()`` of the data module when
  the ensembles are already in the cache (the first, sampling, pass is not timed): reading the
  cache, the splits and the target checks, i.e. what the sampler's output costs before training;
* **host -> device** (configurations/s and MB/s): one pass of the training loader with every batch
  moved to the GPU (pinned memory, ``non_blocking``), synchronised at the end;
* **training samples/s** for ``precision=32-true`` and ``bf16-mixed``: a Lightning ``Trainer`` on one
  GPU, no validation/checkpoints/loggers, best epoch after a warm-up epoch.

    python benchmarks/bench_gpu.py                       # all tasks, ~1-3 minutes with a warm cache
    python benchmarks/bench_gpu.py --tasks counting --epochs 2 --json gpu.json
    python benchmarks/bench_gpu.py --accelerator cpu --n-train 32 --epochs 1   # smoke test, no GPU

Without CUDA (and without ``--accelerator cpu``) it prints why and exits with status 0. The first run
samples the ensembles into the cache (``SCALAR_ML_DATA_DIR``, CPU only): a few minutes for the
default sizes; later runs read them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASKS = ("observables", "detection", "counting")
PRECISIONS = ("32-true", "bf16-mixed")


def compose_task(
    task: str, n_train: int, batch_size: int, cache: str | None, pin_memory: bool
) -> Any:
    """The ``train.yaml`` config of ``task=<task> model=eq`` with ``n_train`` per point (no hydra node)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import scalar_ml  # noqa: F401  (resolvers)
    from scalar_ml.paths import CONF_DIR

    overrides = [
        f"task={task}",
        "model=eq",
        f"data.n_train={n_train}",
        f"data.n_val={max(8, n_train // 10)}",
        "data.n_test=0",
        f"data.batch_size={batch_size}",
        f"data.pin_memory={str(pin_memory).lower()}",
        "sampler.progress=false",
        "seed=0",
    ]
    if cache is not None:
        overrides.append(f"paths.data_dir={cache}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _epoch_timer() -> Any:
    """A Lightning callback that records the wall time of every training epoch (synchronised)."""
    import lightning as L

    class EpochTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t0 = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._t0)

    return EpochTimer()


def data_rates(datamodule: Any, device: torch.device) -> dict[str, float]:
    """Cache -> tensors and host -> device rates of ``datamodule`` (ensembles already cached)."""
    t0 = time.perf_counter()
    datamodule.prepare_data()
    datamodule.setup("fit")
    load_s = time.perf_counter() - t0
    n_loaded = sum(len(datamodule.split(s).inputs) for s in ("train", "val"))
    loader = datamodule.train_dataloader()
    n, nbytes = 0, 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        n += x.shape[0]
        nbytes += x.element_size() * x.nelement() + y.element_size() * y.nelement()
    if device.type == "cuda":
        torch.cuda.synchronize()
    h2d_s = time.perf_counter() - t0
    return {
        "cache_to_tensors_configs_per_s": round(n_loaded / load_s, 1),
        "host_to_device_configs_per_s": round(n / h2d_s, 1),
        "host_to_device_mb_per_s": round(nbytes / h2d_s / 1e6, 1),
    }


def train_rate(cfg: Any, precision: str, accelerator: str, epochs: int) -> dict[str, Any]:
    """Best training samples/s over ``epochs`` timed epochs (after one warm-up epoch)."""
    import lightning as L
    from hydra.utils import instantiate

    torch.manual_seed(0)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.model)
    timer = _epoch_timer()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=epochs + 1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=[timer],
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=datamodule)
    n = len(datamodule.split("train").inputs)
    best = min(timer.times[1:]) if len(timer.times) > 1 else timer.times[0]
    return {
        "samples_per_s": round(n / best, 1),
        "final_train_loss": float(
            trainer.callback_metrics.get("train/loss", torch.tensor(float("nan")))
        ),
    }


def run_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Data rates and fp32/bf16 training rates of ``task``'s EQ preset."""
    from hydra.utils import instantiate

    cfg = compose_task(
        task, args.n_train, args.batch_size, args.cache, pin_memory=args.accelerator == "gpu"
    )
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    warm = instantiate(cfg.data)
    warm.prepare_data()  # samples the ensembles into the cache on the first run (not timed)
    row: dict[str, Any] = {
        "task": task,
        "preset": cfg.model.get("preset"),
        "lattice": [int(cfg.lattice.nt), int(cfg.lattice.nx)],
        "batch_size": args.batch_size,
        **data_rates(instantiate(cfg.data), device),
    }
    for precision in args.precisions:
        row[precision] = train_rate(cfg, precision, args.accelerator, args.epochs)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--n-train", type=int, default=2000, help="training configs per point")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up)")
    parser.add_argument("--cache", default=None, help="ensemble cache (default: paths.data_dir)")
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print(
            "bench_gpu: no CUDA device available (torch "
            f"{torch.__version__}, cuda build: {torch.version.cuda}); nothing to measure. "
            "Run it on a CUDA machine, or use --accelerator cpu for a smoke test."
        )
        return 0
    if args.accelerator == "gpu":
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    t_start = time.perf_counter()
    rows = []
    for task in args.tasks:
        row = run_task(task, args)
        rows.append(row)
        rates = "  ".join(
            f"{p}: {row[p]['samples_per_s']:>10.1f} samples/s" for p in args.precisions
        )
        print(
            f"{task:<12} {row['preset']:<14} {row['lattice'][0]}x{row['lattice'][1]:<4} {rates}  "
            f"cache->tensors {row['cache_to_tensors_configs_per_s']:.0f} configs/s  "
            f"host->device {row['host_to_device_configs_per_s']:.0f} configs/s "
            f"({row['host_to_device_mb_per_s']:.0f} MB/s)",
            flush=True,
        )
    print(f"total {time.perf_counter() - t_start:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
