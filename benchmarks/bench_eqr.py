"""Cost of family eqr against the EQ winners it mirrors: one training step (forward + backward + Adam).

Each case is a pair (EQ preset, eqr preset) with about the same number of parameters. Both train on
the same random configuration-like batch (k in -2…2, l in 0…3) on one CPU thread; the step times
are process CPU times (robust against other load on a shared machine), taken interleaved
(EQ, eqr, EQ, eqr, …) after a warm-up, and the median per network is reported with the ratio.

    python benchmarks/bench_eqr.py                          # counting (8×8) and observables (60×4)
    python benchmarks/bench_eqr.py --batch-size 256 --steps 50 --json out.json

Why eqr costs more at equal parameter count: a group convolution with |H| copies of each channel
has |H| times the parameters of a plain one of the same widths, so at equal parameters its widths
are about 1/sqrt|H| and it does about |H| times the multiply-adds; the moved kernels also live on
the hull of their supports (a 2×2 kernel reflected through its site covers 3×3 offsets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scalar_ml.models import build_preset, count_parameters

CASES: dict[str, tuple[str, tuple[int, int], list[str]]] = {
    # name: (eq preset, lattice, eqr presets)
    "counting_1": ("counting/eq_1", (8, 8), ["counting/eqr_1", "counting/eqr_full"]),
    "counting_2": ("counting/eq_2", (8, 8), ["counting/eqr_2"]),
    "observables": ("observables/eq", (60, 4), ["observables/eqr"]),
    "detection": ("detection/eq", (8, 8), ["detection/eqr"]),
}


def step_seconds(name: str, x: torch.Tensor, steps: int, warmup: int) -> list[float]:
    """CPU seconds of each of ``steps`` training steps of preset ``name`` on batch ``x``."""
    torch.manual_seed(0)
    model = build_preset(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(warmup + steps):
        start = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.process_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per network")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for case in args.cases:
        eq_name, (nt, nx), eqr_names = CASES[case]
        generator = torch.Generator().manual_seed(1)
        k = torch.randint(-2, 3, (args.batch_size, 2, nt, nx), generator=generator)
        l = torch.randint(0, 4, (args.batch_size, 2, nt, nx), generator=generator)
        x = torch.cat([k, l], dim=1).float()
        names = [eq_name, *eqr_names]
        samples: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name in names:
                samples[name] += step_seconds(name, x, args.steps, warmup=3)
        base = statistics.median(samples[eq_name])
        for name in names:
            median = statistics.median(samples[name])
            rows.append(
                {
                    "case": case,
                    "preset": name,
                    "lattice": f"{nt}x{nx}",
                    "params": count_parameters(build_preset(name)),
                    "ms_per_step": 1e3 * median,
                    "ratio_to_eq": median / base,
                }
            )
    print(
        f"batch {args.batch_size}, one thread, median CPU time of {args.rounds}×{args.steps} steps"
    )
    print(f"{'preset':20s} {'lattice':>7s} {'params':>7s} {'ms/step':>8s} {'× EQ':>6s}")
    for row in rows:
        print(
            f"{row['preset']:20s} {row['lattice']:>7s} {row['params']:7d} "
            f"{row['ms_per_step']:8.2f} {row['ratio_to_eq']:6.2f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
