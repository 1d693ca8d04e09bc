"""Cost of point-group augmentation when batches are drawn (issue 15 benchmark).

Times one epoch of batch fetching from the in-memory :class:`TensorBatchDataset` with its
:class:`SeededBatchSampler` (what the training loop's DataLoader does per batch) for: no
augmentation, per-sample translations (``data.translate``), per-sample point-group elements
(``data.augment=symmetry``: one signed gather, targets transformed by the task) and both; and, as
the baseline the gather replaces, a per-sample Python loop calling ``LatticeSymmetry.apply``.
Configurations are random integers (the cost does not depend on the values). CPU time
(``time.process_time``) per epoch, the fastest of ``--repeats`` runs, modes interleaved so that
they share the machine's noise; ratios to the plain fetch. The network's step is not included: the
training step of the smallest preset costs far more per batch (``bench_training.py``).

    python benchmarks/bench_augmentation.py
    python benchmarks/bench_augmentation.py --lattice 60x4 --batch-size 32 --repeats 7
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scalar_ml.data.augmentation import PointGroupAugmentation
from scalar_ml.data.datamodules import SeededBatchSampler, TensorBatchDataset
from scalar_ml.physics.symmetry import FIXED_MU_GROUP
from scalar_ml.tasks import get_task


def _epoch(dataset: TensorBatchDataset, sampler: SeededBatchSampler) -> float:
    t0 = time.process_time()
    for batch in sampler:
        dataset[batch]
    return time.process_time() - t0


def _loop_epoch(dataset: TensorBatchDataset, sampler: SeededBatchSampler) -> float:
    """The per-sample baseline: each sample moved by ``g.apply`` in Python."""
    elements = FIXED_MU_GROUP.elements
    t0 = time.process_time()
    for batch in sampler:
        x = dataset.inputs[batch.indices]
        torch.stack([elements[int(k)].apply(x[b]) for b, k in enumerate(batch.elements)])
    return time.process_time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lattice", default="8x8", help="Nt x Nx of the configurations")
    p.add_argument("--n", type=int, default=4096, help="configurations per epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    nt, nx = (int(v) for v in args.lattice.lower().split("x"))
    torch.set_num_threads(1)
    x = torch.randint(-3, 4, (args.n, 4, nt, nx)).float()
    y = torch.rand(args.n, 1)
    task = get_task("counting")  # invariant per-configuration targets
    aug = PointGroupAugmentation(FIXED_MU_GROUP, (nt, nx))
    plain = TensorBatchDataset(x, y)
    grouped = TensorBatchDataset(x, y, augmentation=aug, task=task)

    def sampler(translate: bool, elements: bool) -> SeededBatchSampler:
        return SeededBatchSampler(
            args.n, args.batch_size, shuffle=True, seed=0, translate=translate,
            lattice=(nt, nx), n_elements=len(aug) if elements else 0,
        )  # fmt: skip

    modes = {
        "plain": lambda: _epoch(plain, sampler(False, False)),
        "translate": lambda: _epoch(plain, sampler(True, False)),
        "augment (gather)": lambda: _epoch(grouped, sampler(False, True)),
        "augment + translate": lambda: _epoch(grouped, sampler(True, True)),
        "augment, per-sample loop": lambda: _loop_epoch(grouped, sampler(False, True)),
    }
    best = dict.fromkeys(modes, float("inf"))
    for _ in range(args.repeats):
        for name, run in modes.items():
            best[name] = min(best[name], run())
    print(
        f"{args.n} configurations {nt}x{nx}, batch {args.batch_size}, group {FIXED_MU_GROUP} "
        f"(|H| = {len(aug)}); CPU s per epoch (best of {args.repeats}), ratio to plain"
    )
    for name, value in best.items():
        per_batch = value / -(-args.n // args.batch_size) * 1e6
        print(
            f"  {name:26s} {value:8.4f} s  {per_batch:8.1f} µs/batch  x{value / best['plain']:.2f}"
        )


if __name__ == "__main__":
    main()
