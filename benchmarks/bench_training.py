"""Training throughput: the full Lightning training step vs a bare PyTorch loop (issue 4 benchmark).

Both loops train the same network (same preset, same initial weights), on the same in-memory data
(the task's LightningDataModule, ensembles from the cache), with the same batch size, optimizer
(Adam, lr 1e-3) and shuffled batch order, for the same number of epochs. The Lightning side is the
real :class:`~scalar_ml.training.module.LatticeModule` in a ``Trainer`` with its data module's
loaders, ``self.log`` of ``train/loss`` and the optional rich progress bar; validation,
checkpointing and loggers are switched off (they are per-epoch costs, not per-step ones). Reported:
training samples per second from the fastest steady-state epoch (every run's first epoch is a
warm-up and dropped; ``--repeats`` runs per loop, alternating the loops so that they share the
machine's noise) and their ratio (target >= 0.9).

    python benchmarks/bench_training.py                     # EQ presets of tasks 1 and 3
    python benchmarks/bench_training.py --cases counting --epochs 3 --batch-size 128 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scalar_ml  # noqa: F401
from scalar_ml.data.datamodules import CountingDataModule, ObservablesDataModule
from scalar_ml.training.module import LatticeModule

CASES: dict[str, dict[str, Any]] = {
    # task 3, EQ 1st winner, 8×8, the default counting data (two points, worms {0, 5})
    "counting": {
        "preset": "counting/eq_1",
        "task": "counting",
        "data": lambda n, bs, cache: CountingDataModule(
            points={
                "a": {"eta": 4.25, "lam": 1.0, "mu": 1.0},
                "b": {"eta": 4.01, "lam": 1.0, "mu": 1.5},
            },
            worms=[0, 5],
            lattice={"nt": 8, "nx": 8},
            n_train=n,
            n_val=64,
            n_test=0,
            batch_size=bs,
            cache_dir=cache,
            sampler={"progress": False},
        ),
    },
    # task 1, EQ winner, 60×4, mu across the onset
    "observables": {
        "preset": "observables/eq",
        "task": "observables",
        "data": lambda n, bs, cache: ObservablesDataModule(
            physics={"eta": 4.01, "lam": 1.0, "mu": 1.0},
            mu_values=[0.91, 1.0, 1.05],
            lattice={"nt": 60, "nx": 4},
            n_train=n,
            n_val=32,
            n_test=0,
            batch_size=bs,
            cache_dir=cache,
            sampler={"progress": False},
        ),
    },
}


def bare_loop(
    module: LatticeModule, x_all: torch.Tensor, y_all: torch.Tensor, batch: int, epochs: int
) -> list[float]:
    """Plain PyTorch: shuffled index batches over the tensors, MSE, Adam. Seconds per epoch."""
    net = module.net
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    n = x_all.shape[0]
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            x, y = x_all[idx], y_all[idx]
            loss = F.mse_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


class _EpochTimer:
    """Lightning callback: wall time of every training epoch (start hook to end hook)."""

    def __init__(self) -> None:
        import lightning as L

        class Timer(L.Callback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self._t0 = 0.0

            def on_train_epoch_start(self, trainer, pl_module) -> None:
                self._t0 = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module) -> None:
                self.times.append(time.perf_counter() - self._t0)

        self.callback = Timer()


def lightning_loop(
    module: LatticeModule, datamodule: Any, epochs: int, progress_bar: bool
) -> list[float]:
    """The real LightningModule and data module in a Trainer (no validation/checkpoints/loggers)."""
    import lightning as L

    timer = _EpochTimer().callback
    callbacks: list[Any] = [timer]
    if progress_bar:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
        callbacks=callbacks,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        deterministic=True,
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.times


def run_case(
    name: str, n_train: int, batch: int, epochs: int, repeats: int, cache: str | None
) -> dict[str, Any]:
    """Best steady-state epoch time (first epoch of every run dropped) of each loop -> samples/s."""
    case = CASES[name]
    dm = case["data"](n_train, batch, cache)
    dm.prepare_data()
    dm.setup()
    train = dm.split("train")
    n = train.inputs.shape[0]
    torch.manual_seed(0)
    template = LatticeModule(task=case["task"], preset=case["preset"])
    best: dict[str, float] = {
        "bare": math.inf,
        "lightning": math.inf,
        "lightning+progress": math.inf,
    }
    for _ in range(repeats):  # alternate the loops so that they share the machine's noise
        for kind in best:
            module = copy.deepcopy(template)
            if kind == "bare":
                times = bare_loop(module, train.inputs, train.targets, batch, epochs + 1)
            else:
                times = lightning_loop(
                    module, dm, epochs + 1, progress_bar=kind.endswith("progress")
                )
            best[kind] = min(best[kind], *times[1:])
    sps = {k: n / v for k, v in best.items()}
    return {
        "case": name,
        "preset": case["preset"],
        "lattice": list(dm.lattice.shape),
        "n_train": n,
        "batch_size": batch,
        "timed_epochs_per_run": epochs,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "samples_per_s": {k: round(v, 1) for k, v in sps.items()},
        "ratio": round(sps["lightning"] / sps["bare"], 3),
        "ratio_with_progress_bar": round(sps["lightning+progress"] / sps["bare"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--n-train", type=int, default=2000, help="training configurations per point"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (+1 warm-up)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (train.yaml: cpu_threads)"
    )
    parser.add_argument("--cache-dir", default=None, help="ensemble cache (default: the project's)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.cases:
        row = run_case(
            name, args.n_train, args.batch_size, args.epochs, args.repeats, args.cache_dir
        )
        rows.append(row)
        sps = row["samples_per_s"]
        print(
            f"{row['preset']:<16} {'x'.join(map(str, row['lattice'])):>5}  batch {row['batch_size']:>4}  "
            f"bare {sps['bare']:>9.0f}/s  lightning {sps['lightning']:>9.0f}/s  "
            f"(+progress bar {sps['lightning+progress']:>9.0f}/s)  "
            f"ratio {row['ratio']:.3f} ({row['ratio_with_progress_bar']:.3f})",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
