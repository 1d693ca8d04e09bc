"""Retrain the winners of a search from scratch with several seeds, then aggregate their losses.

``python -m scalar_ml.search.retrain SWEEP_DIR [--rank 1 --rank 2 ...] [--seeds 10] [OVERRIDE ...]``

For each requested rank (1 = best completed trial of the study, over all its sweeps) it prints and
runs::

    python train.py -m task=<task> model=searchable model.family=<family> <the trial's fixed
        overrides> model.arch.<key>=<value> (every key) <the trial's other sampled values, e.g.
        model.optimizer.lr, data.batch_size> seed=0,1,...,9 hydra.sweep.dir=SWEEP_DIR/retrain/rank1-trial<N>

and finally writes ``SWEEP_DIR/retrain/aggregate.md`` / ``.csv`` / ``_runs.csv`` with mean and
median of the validation and test losses per rank (:mod:`scalar_ml.search.aggregate`). Extra
``OVERRIDE`` arguments are appended (and replace a carried override of the same key), e.g.
``trainer.max_epochs=100``. ``--dry-run`` only prints the commands.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scalar_ml.paths import PROJECT_ROOT, app_command
from scalar_ml.search.report import (
    ARCH_PREFIX,
    TrialRecord,
    load_search_record,
    open_study,
    trial_records,
)

__all__ = ["format_override", "main", "ranked_trials", "retrain_overrides"]

#: Fixed overrides of a trial that the retrain command sets itself (or must not carry).
_NOT_CARRIED = ("hparams_search", "task", "model", "model.family", "seed")
_PLAIN = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./:+\-@%]*$")
_KEYWORDS = {"true", "false", "null", "inf", "nan"}


def format_override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override syntax (strings quoted where needed).

    >>> format_override("data.worms", [0, 5]), format_override("model.arch.bias_out", None)
    ('data.worms=[0,5]', 'model.arch.bias_out=null')
    >>> format_override("a", "sum"), format_override("a", "x y"), format_override("a", "true")
    ('a=sum', "a='x y'", "a='true'")
    """
    return f"{key}={_value(value)}"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _KEYWORDS:
        return text
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def ranked_trials(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Completed, non-penalised trials, best (lowest objective) first."""
    ok = [r for r in records if r.status == "ok" and r.value is not None]
    return sorted(ok, key=lambda r: (float(r.value or 0.0), r.number))


def retrain_overrides(
    trial: TrialRecord,
    *,
    task: str,
    family: str,
    seeds: Sequence[int],
    sweep_dir: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``train.py -m`` overrides that retrain ``trial`` with ``seeds`` into ``sweep_dir``."""
    if trial.arch is None:
        raise ValueError(f"trial {trial.number} has no valid architecture")
    if not seeds:
        raise ValueError("at least one seed is needed")
    replaced = {_key(o) for o in extra}
    carried: list[str] = [f"task={task}", "model=searchable", f"model.family={family}"]
    for key, value in trial.fixed.items():
        if key in _NOT_CARRIED or key.startswith((ARCH_PREFIX, "hydra.")):
            continue
        # The sweeper stores a fixed override's value as its command-line text: carry it verbatim.
        carried.append(f"{key}={value}" if isinstance(value, str) else format_override(key, value))
    carried += [format_override(ARCH_PREFIX + k, v) for k, v in trial.arch.items()]
    carried += [
        format_override(k, v) for k, v in trial.params.items() if not k.startswith(ARCH_PREFIX)
    ]
    carried.append("seed=" + ",".join(str(int(s)) for s in seeds))
    carried.append(format_override("hydra.sweep.dir", str(sweep_dir)))
    return [o for o in carried if _key(o) not in replaced] + list(extra)


def _fresh_dir(path: Path) -> Path:
    if not path.exists():
        return path
    n = 2
    while path.with_name(f"{path.name}-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}-{n}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (non-zero when a training run failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m scalar_ml.search.retrain",
        description="Retrain the best architectures of a search with several seeds "
        "(python train.py -m ... seed=0,...,N-1), then aggregate their val/test losses.",
    )
    parser.add_argument(
        "sweep_dir", type=Path, help="sweep directory of the search (holds search.yaml)"
    )
    parser.add_argument(
        "--rank",
        type=int,
        action="append",
        default=None,
        help="1 = best trial (repeatable; default 1)",
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 … N-1 (default 10)")
    parser.add_argument("--storage", default=None, help="storage URL (default: from search.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "overrides", nargs="*", help="extra train.py overrides, e.g. trainer.max_epochs=100"
    )
    args = parser.parse_intermixed_args(argv)
    ranks = args.rank or [1]
    if args.seeds < 1 or any(r < 1 for r in ranks):
        parser.exit(2, "error: --seeds and --rank must be >= 1\n")
    try:
        record = load_search_record(args.sweep_dir)
        study = open_study(record, args.storage)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        parser.exit(2, f"error: {exc}\n")
    penalty = record.get("divergence_penalty")
    ranked = ranked_trials(
        trial_records(
            study,
            task=str(record["task"]),
            family=str(record["family"]),
            base_arch=record["arch"],
            lattice_size=record["lattice_size"],
            penalty=None if penalty is None else float(penalty),
            group=record.get("group"),
        )
    )
    if max(ranks) > len(ranked):
        parser.exit(
            2,
            f"error: rank {max(ranks)} requested but study {record['study_name']} has "
            f"{len(ranked)} completed trial(s) with a real objective\n",
        )
    retrain_root = args.sweep_dir / "retrain"
    run_dirs: list[Path] = []
    labels: list[str] = []
    status = 0
    for rank in ranks:
        trial = ranked[rank - 1]
        run_dir = _fresh_dir(retrain_root / f"rank{rank}-trial{trial.number}")
        overrides = retrain_overrides(
            trial,
            task=str(record["task"]),
            family=str(record["family"]),
            seeds=range(args.seeds),
            sweep_dir=run_dir,
            extra=args.overrides,
        )
        print(
            f"# rank {rank}: trial {trial.number}, objective {trial.value:.4g}, {trial.architecture}"
        )
        command = [*app_command("train"), "-m", *overrides]
        shown = shlex.join(["python", *command[1:]]).replace(f"{PROJECT_ROOT}/", "")
        print(shown, flush=True)
        if args.dry_run:
            continue
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            print(
                f"error: train.py exited with status {result.returncode} for rank {rank}",
                file=sys.stderr,
            )
            status = result.returncode
            continue
        run_dirs.append(run_dir)
        labels.append(f"rank {rank} (trial {trial.number})")
    if run_dirs:
        from scalar_ml.search.aggregate import aggregate, format_markdown, write_outputs

        rows, runs = aggregate(run_dirs, labels)
        write_outputs(rows, runs, retrain_root / "aggregate")
        print(format_markdown(rows))
        print(f"# written: {retrain_root / 'aggregate.md'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
