"""Mean and median of validation and test losses over retrained instances (the seed's table).

``python -m scalar_ml.search.aggregate DIR [DIR ...]`` reads every ``metrics.json`` below each
directory (one per training run, e.g. the jobs of ``python train.py -m ... seed=0,1,...,9``) and
prints one row per directory, like the seed's "test loss vs validation loss" table:

| run set | runs | diverged | parameters | val mean | val median | test mean | test median |

Diverged runs (``"diverged": true`` in their metrics) are counted but left out of the statistics.
``--out PREFIX`` also writes ``PREFIX.md``, ``PREFIX.csv`` (one row per run set) and
``PREFIX_runs.csv`` (one row per run). Losses on other lattice sizes (the seed's "test loss up to
64×64") come from the evaluation tools, not from here.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunSetSummary", "collect_runs", "format_markdown", "main", "summarise"]

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class RunSetSummary:
    """Statistics of one set of runs (e.g. one architecture retrained with several seeds)."""

    label: str
    n_runs: int
    n_diverged: int
    seeds: tuple[int, ...]
    n_parameters: tuple[int, ...]
    val_mean: float | None
    val_median: float | None
    test_mean: float | None
    test_median: float | None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def collect_runs(directory: Path) -> list[dict[str, Any]]:
    """The ``metrics.json`` contents below ``directory`` (sorted by path), with ``metrics_file`` added."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    runs = []
    for path in sorted(directory.rglob(METRICS_FILE)):
        with path.open() as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        data["metrics_file"] = str(path)
        runs.append(data)
    if not runs:
        raise FileNotFoundError(
            f"no {METRICS_FILE} below {directory} (is it the multirun directory of a finished "
            "`python train.py -m ... seed=0,1,...` run?)"
        )
    return runs


def summarise(
    label: str,
    runs: Sequence[Mapping[str, Any]],
    *,
    val_key: str = "val/loss",
    test_key: str = "test/loss",
) -> RunSetSummary:
    """Mean and median of ``val_key`` and ``test_key`` over the runs that did not diverge.

    >>> s = summarise("a", [{"seed": 0, "val/loss": 1.0, "test/loss": 2.0, "n_parameters": 9},
    ...                     {"seed": 1, "val/loss": 3.0, "test/loss": 4.0, "n_parameters": 9},
    ...                     {"seed": 2, "val/loss": 11.0, "test/loss": 6.0, "n_parameters": 9},
    ...                     {"seed": 3, "diverged": True}])
    >>> s.n_runs, s.n_diverged, s.val_mean, s.val_median, s.test_median
    (4, 1, 5.0, 3.0, 4.0)
    """
    ok = [run for run in runs if not run.get("diverged", False)]
    vals = [v for v in (_finite(run.get(val_key)) for run in ok) if v is not None]
    tests = [v for v in (_finite(run.get(test_key)) for run in ok) if v is not None]
    return RunSetSummary(
        label=label,
        n_runs=len(runs),
        n_diverged=len(runs) - len(ok),
        seeds=tuple(sorted(int(run["seed"]) for run in runs if run.get("seed") is not None)),
        n_parameters=tuple(
            sorted({int(run["n_parameters"]) for run in runs if "n_parameters" in run})
        ),
        val_mean=statistics.fmean(vals) if vals else None,
        val_median=statistics.median(vals) if vals else None,
        test_mean=statistics.fmean(tests) if tests else None,
        test_median=statistics.median(tests) if tests else None,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3e}"


def format_markdown(rows: Sequence[RunSetSummary]) -> str:
    """The summaries as a markdown table (losses in scientific notation, like the seed's slide)."""
    lines = [
        "| run set | runs | diverged | parameters | val loss mean | val loss median | test loss mean | test loss median |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        params = "/".join(str(n) for n in row.n_parameters) or "-"
        lines.append(
            f"| {row.label} | {row.n_runs} | {row.n_diverged} | {params} | {_fmt(row.val_mean)} | "
            f"{_fmt(row.val_median)} | {_fmt(row.test_mean)} | {_fmt(row.test_median)} |"
        )
    return "\n".join(lines)


def write_outputs(
    rows: Sequence[RunSetSummary], runs: Mapping[str, Sequence[Mapping[str, Any]]], prefix: Path
) -> None:
    """``prefix.md``, ``prefix.csv`` and ``prefix_runs.csv``."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.md").write_text(format_markdown(rows) + "\n")
    with Path(f"{prefix}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "run_set",
                "runs",
                "diverged",
                "n_parameters",
                "val_mean",
                "val_median",
                "test_mean",
                "test_median",
            ]
        )
        for row in rows:
            writer.writerow(
                [
                    row.label,
                    row.n_runs,
                    row.n_diverged,
                    "/".join(str(n) for n in row.n_parameters),
                    *(
                        "" if v is None else repr(v)
                        for v in (row.val_mean, row.val_median, row.test_mean, row.test_median)
                    ),
                ]
            )
    with Path(f"{prefix}_runs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["run_set", "seed", "diverged", "val_loss", "test_loss", "n_parameters", "metrics_file"]
        )
        for label, run_list in runs.items():
            for run in run_list:
                writer.writerow(
                    [
                        label,
                        run.get("seed", ""),
                        bool(run.get("diverged", False)),
                        run.get("val/loss", ""),
                        run.get("test/loss", ""),
                        run.get("n_parameters", ""),
                        run.get("metrics_file", ""),
                    ]
                )


def aggregate(
    directories: Sequence[Path], labels: Sequence[str] | None = None
) -> tuple[list[RunSetSummary], dict[str, list[dict[str, Any]]]]:
    """Collect and summarise each directory; labels default to the directory names."""
    if labels is not None and len(labels) != len(directories):
        raise ValueError(f"got {len(labels)} labels for {len(directories)} directories")
    names = list(labels) if labels is not None else [Path(d).name for d in directories]
    if len(set(names)) != len(names):
        names = [str(d) for d in directories]
    runs = {name: collect_runs(Path(d)) for name, d in zip(names, directories, strict=True)}
    return [summarise(name, run_list) for name, run_list in runs.items()], runs


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the table; ``--out PREFIX`` also writes it to files."""
    parser = argparse.ArgumentParser(
        prog="python -m scalar_ml.search.aggregate",
        description="Mean and median of val/loss and test/loss over the runs below each directory "
        "(e.g. one architecture retrained with `python train.py -m ... seed=0,1,...,9`).",
    )
    parser.add_argument(
        "directories", nargs="+", type=Path, help="multirun directories, one row each"
    )
    parser.add_argument(
        "--label", action="append", default=None, help="row label per directory (repeat)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="also write OUT.md, OUT.csv, OUT_runs.csv"
    )
    args = parser.parse_args(argv)
    try:
        rows, runs = aggregate(args.directories, args.label)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.out is not None:
        write_outputs(rows, runs, args.out)
    print(format_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
