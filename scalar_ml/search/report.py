"""The outcome of a search: a table of the top trials, all trials as CSV, and two PNGs.

:func:`write_report` reads the study from its storage and writes into the sweep directory:

- ``top_trials.md``: the best trials (objective, parameter count, architecture in one line, learning
  rate, batch size), then the trials that diverged, failed or did not fit the lattice, and the
  command that retrains the winner;
- ``trials.csv``: every trial of the study (all invocations), with its sampled parameters;
- ``optimization_history.png``: objective per trial and the best so far;
- ``param_importances.png``: first-order importances (:func:`parameter_importances`) over the
  completed, non-penalised trials; skipped, with the reason in ``top_trials.md``, while there are
  too few such trials or no parameter shows an effect.

A trial's architecture is the sweep's ``model.arch`` overlaid with the trial's fixed overrides
(optuna user attributes) and its sampled ``model.arch.*`` parameters.
"""

from __future__ import annotations

import csv
import logging
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalar_ml.search.space import InvalidArchitectureError, arch_spec, normalise_arch

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ARCH_PREFIX",
    "TrialRecord",
    "format_top_table",
    "parameter_importances",
    "parse_fixed_value",
    "plot_importances",
    "plot_optimization_history",
    "trial_records",
    "write_report",
]

log = logging.getLogger(__name__)

#: Override prefix of the architecture parameters.
ARCH_PREFIX = "model.arch."
TOP_TABLE_FILE = "top_trials.md"
TRIALS_CSV_FILE = "trials.csv"
HISTORY_PNG_FILE = "optimization_history.png"
IMPORTANCES_PNG_FILE = "param_importances.png"


@dataclass
class TrialRecord:
    """One trial of a study, classified.

    ``status`` is ``ok`` (completed with a real objective), ``diverged`` (completed with the
    divergence penalty), ``invalid`` (the point does not fit the lattice: failed, or completed with a
    penalty), ``failed``, ``running`` (still running, or interrupted) or ``pruned``.
    """

    number: int
    state: str
    status: str
    value: float | None
    params: dict[str, Any]
    fixed: dict[str, Any]
    arch: dict[str, Any] | None
    architecture: str
    n_parameters: int | None
    note: str = ""
    overrides: list[str] = field(default_factory=list)


def parse_fixed_value(key: str, text: Any) -> Any:
    """The value of a fixed override as Hydra parses it (the sweeper stores the command-line text).

    >>> parse_fixed_value("model.arch.n_conv", "3"), parse_fixed_value("model.arch.pool_0", "none")
    (3, 'none')
    """
    if not isinstance(text, str):
        return text
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(f"{key}={text}").value()


def _arch_of(
    base_arch: Mapping[str, Any], fixed: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    arch = dict(normalise_arch(base_arch))
    for key, text in fixed.items():
        if key.startswith(ARCH_PREFIX):
            arch[key.removeprefix(ARCH_PREFIX)] = parse_fixed_value(key, text)
    for key, value in params.items():
        if key.startswith(ARCH_PREFIX):
            arch[key.removeprefix(ARCH_PREFIX)] = value
    return arch


def trial_records(
    study: optuna.Study,
    *,
    task: str,
    family: str,
    base_arch: Mapping[str, Any],
    lattice_size: Sequence[int],
    penalty: float | None,
    group: Sequence[str] | None = None,
) -> list[TrialRecord]:
    """Every trial of ``study`` as a :class:`TrialRecord` (architecture rebuilt, parameters counted;
    ``group``: the point group of a family eqr search, ``model.group``)."""
    from optuna.trial import TrialState

    from scalar_ml.models import build_model, count_parameters

    records = []
    for trial in study.get_trials(deepcopy=False):
        fixed = {k: v for k, v in trial.user_attrs.items() if isinstance(k, str)}
        arch = _arch_of(base_arch, fixed, trial.params)
        n_parameters: int | None = None
        note = ""
        try:
            spec = arch_spec(arch, family, task=task, lattice_size=lattice_size, group=group)
            architecture = str(spec["description"])
            n_parameters = count_parameters(build_model(spec))
            valid = True
        except InvalidArchitectureError as exc:
            architecture = "(invalid)"
            note = str(exc)
            valid = False
        value = trial.value if trial.state == TrialState.COMPLETE else None
        if trial.state == TrialState.COMPLETE:
            penalised = value is not None and penalty is not None and value >= penalty
            status = "ok" if not penalised else ("diverged" if valid else "invalid")
            if status == "diverged":
                note = f"objective {value:g} = divergence penalty (loss became NaN/inf)"
        elif trial.state == TrialState.FAIL:
            status = "failed" if valid else "invalid"
            if valid:
                note = "the trial raised an exception (see its job log)"
        elif trial.state == TrialState.RUNNING:
            status = "running"
            note = "still running, or its sweep was interrupted"
        else:
            status = trial.state.name.lower()
        records.append(
            TrialRecord(
                number=trial.number,
                state=trial.state.name,
                status=status,
                value=value,
                params=dict(trial.params),
                fixed=fixed,
                arch=arch if valid else None,
                architecture=architecture,
                n_parameters=n_parameters,
                note=note,
            )
        )
    return records


def _fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _param(record: TrialRecord, key: str) -> str:
    for source in (record.params, record.fixed):
        if key in source:
            value = source[key]
            return f"{value:.3g}" if isinstance(value, float) else str(value)
    return "default"


def format_top_table(records: Sequence[TrialRecord], top: int) -> str:
    """Markdown table of the ``top`` best ``ok`` trials (lowest objective first)."""
    ranked = sorted((r for r in records if r.status == "ok"), key=lambda r: (r.value, r.number))
    lines = [
        "| rank | trial | objective | parameters | architecture | lr | batch size |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for rank, record in enumerate(ranked[:top], start=1):
        lines.append(
            f"| {rank} | {record.number} | {_fmt_value(record.value)} | {record.n_parameters} | "
            f"{record.architecture} | {_param(record, 'model.optimizer.lr')} | "
            f"{_param(record, 'data.batch_size')} |"
        )
    return "\n".join(lines)


def _write_csv(records: Sequence[TrialRecord], path: Path) -> None:
    param_keys = sorted({key for record in records for key in record.params})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "trial",
                "state",
                "status",
                "objective",
                "n_parameters",
                "architecture",
                "note",
                *param_keys,
            ]
        )
        for record in records:
            writer.writerow(
                [
                    record.number,
                    record.state,
                    record.status,
                    "" if record.value is None else repr(record.value),
                    "" if record.n_parameters is None else record.n_parameters,
                    record.architecture,
                    record.note,
                    *[record.params.get(key, "") for key in param_keys],
                ]
            )


def plot_optimization_history(records: Sequence[TrialRecord], path: Path, title: str) -> None:
    """Objective per trial (log scale when positive), best so far, penalised and failed trials marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.status == "ok" and r.value is not None]
    bad = [r for r in records if r.status in ("diverged", "invalid", "failed")]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    if ok:
        xs = [r.number for r in ok]
        ys = [float(r.value) for r in ok if r.value is not None]
        ax.plot(xs, ys, "o", color="tab:blue", label="objective")
        best: list[float] = []
        for y in ys:
            best.append(y if not best else min(best[-1], y))
        ax.step(xs, best, where="post", color="tab:red", label="best so far")
        if min(ys) > 0:
            ax.set_yscale("log")
    if bad:
        top = max((float(r.value) for r in ok if r.value is not None), default=1.0)
        ax.plot(
            [r.number for r in bad],
            [top] * len(bad),
            "x",
            color="tab:gray",
            label="diverged / invalid / failed",
        )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(title)
    if ok or bad:
        ax.legend(loc="best")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parameter_importances(
    trials: Sequence[tuple[Mapping[str, Any], float]], *, max_bins: int = 4
) -> tuple[dict[str, float], str]:
    """First-order importances of the parameters: bias-corrected correlation ratios, normalised.

    ``trials`` are ``(params, objective)`` pairs. The objective is taken on a log scale when it is
    positive everywhere. For each parameter that varies, the trials are grouped by its value (float
    parameters with more than ``max_bins`` values: into ``max_bins`` quantile bins) and its main
    effect is ``ε² = (SS_between − (k − 1)·MS_within) / SS_total`` (one-way ANOVA, clipped at 0);
    the importances are the ε² divided by their sum. This is the first-order part of what fANOVA
    measures, computed without a surrogate model (optuna 2.10's fANOVA needs scikit-learn).
    Returns ``({}, reason)`` when there is nothing to measure.

    >>> imp, _ = parameter_importances([({"a": 1, "b": "x"}, 1.0), ({"a": 1, "b": "y"}, 10.0),
    ...                                 ({"a": 2, "b": "x"}, 1.1), ({"a": 2, "b": "y"}, 9.0)])
    >>> sorted(imp.items())
    [('a', 0.0), ('b', 1.0)]
    """
    import numpy as np

    if len(trials) < 3:
        return {}, f"parameter importances need at least 3 completed trials (have {len(trials)})"
    values = np.array([float(v) for _, v in trials])
    y = np.log(values) if np.all(values > 0) else values
    ss_total = float(np.sum((y - y.mean()) ** 2))
    if ss_total <= 0.0:
        return {}, "all completed trials have the same objective"
    names = sorted({name for params, _ in trials for name in params})
    effects: dict[str, float] = {}
    for name in names:
        if not all(name in params for params, _ in trials):
            continue
        raw = [params[name] for params, _ in trials]
        if len({repr(v) for v in raw}) < 2:
            continue
        numeric = all(isinstance(v, float) for v in raw)
        if numeric and len(set(raw)) > max_bins:
            edges = np.quantile(np.array(raw, dtype=float), np.linspace(0, 1, max_bins + 1)[1:-1])
            keys = [int(np.searchsorted(edges, v, side="right")) for v in raw]
        else:
            keys = [repr(v) for v in raw]
        groups: dict[Any, list[float]] = {}
        for key, value in zip(keys, y, strict=True):
            groups.setdefault(key, []).append(float(value))
        k, n = len(groups), len(y)
        if n <= k:
            effects[name] = 0.0
            continue
        ss_between = sum(len(g) * (np.mean(g) - y.mean()) ** 2 for g in groups.values())
        ms_within = (ss_total - ss_between) / (n - k)
        effects[name] = max(0.0, float(ss_between - (k - 1) * ms_within) / ss_total)
    if not effects:
        return {}, "no sampled parameter varies between the completed trials"
    total = sum(effects.values())
    if total <= 0.0:
        return {}, (
            f"no parameter shows an effect beyond noise yet ({len(trials)} completed trials; "
            "more trials are needed)"
        )
    ranked = sorted(effects.items(), key=lambda kv: (-kv[1], kv[0]))
    return {name: effect / total for name, effect in ranked}, ""


def plot_importances(importances: Mapping[str, float], path: Path, title: str) -> None:
    """Horizontal bars, most important parameter on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(items) + 1.2), constrained_layout=True)
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlabel("importance (first-order ε² of the objective, normalised)")
    ax.set_title(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _section(title: str, records: Iterable[TrialRecord]) -> list[str]:
    rows = list(records)
    if not rows:
        return []
    lines = ["", f"## {title}", ""]
    lines += [f"- trial {r.number} ({r.status}): {r.note}" for r in rows]
    return lines


def write_report(
    study: optuna.Study,
    sweep_dir: Path,
    *,
    task: str,
    family: str,
    base_arch: Mapping[str, Any],
    lattice_size: Sequence[int],
    penalty: float | None,
    top: int = 10,
    trials_before: int | None = None,
    group: Sequence[str] | None = None,
) -> list[TrialRecord]:
    """Write ``top_trials.md``, ``trials.csv`` and the PNGs into ``sweep_dir``; return the records."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    records = trial_records(
        study,
        task=task,
        family=family,
        base_arch=base_arch,
        lattice_size=lattice_size,
        penalty=penalty,
        group=group,
    )
    title = f"study {study.study_name}"
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [
        f"# Architecture search: {study.study_name} ({task}, {family})",
        "",
        f"{len(records)} trials in the study ({summary})"
        + (
            f"; {len(records) - trials_before} run by this sweep."
            if trials_before is not None
            else "."
        ),
        f"Objective: {study.direction.name.lower()} the metric returned by train.py "
        "(optimized_metric, on the best checkpoint); parameters counted on the "
        f"{'×'.join(str(int(n)) for n in lattice_size)} training lattice.",
        "",
        format_top_table(records, top),
    ]
    _write_csv(records, sweep_dir / TRIALS_CSV_FILE)
    plot_optimization_history(records, sweep_dir / HISTORY_PNG_FILE, title)
    importances, reason = parameter_importances(
        [(r.params, float(r.value)) for r in records if r.status == "ok" and r.value is not None]
    )
    if importances:
        plot_importances(importances, sweep_dir / IMPORTANCES_PNG_FILE, title)
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in list(importances.items())[:5] if v > 0)
        lines += [
            "",
            f"Most important parameters (first-order ε², {IMPORTANCES_PNG_FILE}): {ranked}.",
        ]
    else:
        (sweep_dir / IMPORTANCES_PNG_FILE).unlink(missing_ok=True)
        lines += ["", f"No {IMPORTANCES_PNG_FILE}: {reason}."]
    lines += _section("Diverged trials", (r for r in records if r.status == "diverged"))
    lines += _section(
        "Architectures that do not fit the lattice", (r for r in records if r.status == "invalid")
    )
    lines += _section("Failed trials", (r for r in records if r.status == "failed"))
    lines += _section(
        "Running or interrupted trials", (r for r in records if r.status == "running")
    )
    if any(r.status == "ok" for r in records):
        command = shlex.join(
            ["python", "-m", "scalar_ml.search.retrain", str(sweep_dir), "--seeds", "10"]
        )
        lines += ["", "## Retrain the winner with 10 seeds", "", "```bash", command, "```"]
    (sweep_dir / TOP_TABLE_FILE).write_text("\n".join(lines) + "\n")
    return records


def load_search_record(sweep_dir: Path) -> dict[str, Any]:
    """The ``search.yaml`` that :class:`~scalar_ml.search.callback.SearchCallback` wrote into ``sweep_dir``."""
    from omegaconf import OmegaConf

    from scalar_ml.search.callback import SEARCH_FILE

    path = Path(sweep_dir) / SEARCH_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {sweep_dir} is not the sweep directory of an architecture "
            "search (python train.py -m hparams_search=<task>_<family> writes it at the start)"
        )
    record = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(record, dict)
    return record


def open_study(record: Mapping[str, Any], storage: str | None = None) -> optuna.Study:
    """Load the study of a ``search.yaml`` record (``storage`` replaces a password-masked URL)."""
    import optuna

    url = storage or str(record["storage"])
    if storage is None and "***" in url:
        raise ValueError(
            f"the storage URL in search.yaml is masked ({url}); pass the real one with --storage "
            "(or keep the password out of the URL: PGPASSWORD, ~/.pgpass)"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=str(record["study_name"]), storage=url)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scalar_ml.search.report SWEEP_DIR``: (re)write the report of a search sweep."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m scalar_ml.search.report",
        description="Write top_trials.md, trials.csv and the PNGs of a search sweep directory "
        "(e.g. while the sweep still runs, or after it was interrupted).",
    )
    parser.add_argument(
        "sweep_dir", type=Path, help="sweep directory of the search (holds search.yaml)"
    )
    parser.add_argument("--storage", default=None, help="storage URL (default: from search.yaml)")
    parser.add_argument("--top", type=int, default=10, help="rows of the top-trials table")
    args = parser.parse_args(argv)
    try:
        record = load_search_record(args.sweep_dir)
        study = open_study(record, args.storage)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        parser.exit(2, f"error: {exc}\n")
    penalty = record.get("divergence_penalty")
    write_report(
        study,
        args.sweep_dir,
        task=str(record["task"]),
        family=str(record["family"]),
        base_arch=record["arch"],
        lattice_size=record["lattice_size"],
        penalty=None if penalty is None else float(penalty),
        top=args.top,
        group=record.get("group"),
    )
    print((args.sweep_dir / TOP_TABLE_FILE).read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
