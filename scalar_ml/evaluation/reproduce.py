r"""Reproduce the seed's experiments end to end: train, evaluate, write ``docs/results.md``.

``python -m scalar_ml.evaluation.reproduce [--scale reduced|smoke|full] [--experiments a,b]``

Every experiment is a config ``conf/experiment/<name>.yaml`` (composed with ``conf/train.yaml``) whose
``reproduce`` section says how to evaluate it and how to scale it::

    reproduce:
      order: 10              # position on the results page (experiments run in this order)
      title, seed_result     # what the seed shows (quoted on the results page)
      train_from: null       # or another experiment whose trainings are reused (same setup)
      grid: observables      # conf/grid/<name>.yaml for evaluate.py
      evaluate: []           # evaluate.py overrides at every scale
      figures: [stem, ...]   # plots shown on the results page (prefixes of plots/<stem>.png)
      outcomes: []           # measured statements besides the generic ones (see OUTCOMES)
      scales: {full: {train: [], evaluate: []}, reduced: {...}, smoke: {...}}

The experiments are every config of ``conf/experiment/`` with a ``reproduce`` section
(:func:`experiment_names`), so a new experiment is one YAML file.

For each experiment the runner calls, in fresh processes (cwd = project root)::

    python train.py -m experiment=NAME hydra.sweep.dir=OUT/NAME/train <scale.train>
    python evaluate.py ckpt_path=OUT/NAME/train grid=GRID hydra.run.dir=OUT/NAME/eval <evaluate> <scale.evaluate>

then copies the listed figures to ``--figures-dir`` (default ``docs/results/``) and writes the
results page (default ``docs/results.md``): the scale and what differs from the seed, per
experiment the seed's claim, the commands, the summary tables, the figures and **measured
outcomes** computed from the tables (e.g. whether EQ has the lowest test loss) — nothing on the page
is typed in by hand. ``--scale full`` runs the configs as written (the seed's scale: days on a
CPU); ``reduced`` (default) fits a 2-core CPU in under an hour; ``smoke`` checks the pipeline in
minutes. ``--dry-run`` prints the commands only; ``--report-only --out DIR`` rewrites the page
(tables recomputed and figures redrawn from the runs' CSVs) without training; ``--note TEXT`` adds
a remark about the run's circumstances. Wall and CPU times of every step are recorded in
``OUT/<name>/timings.json`` and ``OUT/runner.log``.
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scalar_ml.paths import CONF_DIR, PROJECT_ROOT, app_command

__all__ = [
    "OUTCOMES",
    "ExperimentPlan",
    "experiment_names",
    "load_plans",
    "main",
    "run_experiments",
    "write_results",
]


def experiment_names() -> list[str]:
    """The experiments of ``conf/experiment/`` that have a ``reproduce`` section, by their ``order``.

    (``obs_extrapolation`` reuses ``obs_sizes``' trainings, so that one comes first.)
    """
    from omegaconf import OmegaConf

    found = []
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        rep = OmegaConf.load(path).get("reproduce")
        if rep is not None:
            found.append((float(rep.get("order", 1000)), path.stem))
    return [name for _, name in sorted(found)]


SCALES: tuple[str, ...] = ("reduced", "smoke", "full")
TIMINGS_FILE = "timings.json"


@dataclass
class ExperimentPlan:
    """What the runner does for one experiment at one scale."""

    name: str
    title: str
    seed_result: str
    task: str
    grid: str
    train_from: str | None
    train_overrides: list[str]
    evaluate_overrides: list[str]
    figures: list[str]
    outcomes: list[dict[str, object]] = field(default_factory=list)
    train_dir: Path = Path()
    eval_dir: Path = Path()
    timings: dict[str, float] = field(default_factory=dict)

    def train_command(self, extra: Sequence[str] = ()) -> list[str] | None:
        if self.train_from:
            return None
        return [
            *app_command("train"), "-m", f"experiment={self.name}",
            f"hydra.sweep.dir={self.train_dir}", "callbacks.rich_progress_bar=null",
            "++trainer.enable_progress_bar=false",
            *self.train_overrides, *extra,
        ]  # fmt: skip

    def evaluate_command(self, extra: Sequence[str] = ()) -> list[str]:
        return [
            *app_command("evaluate"), f"ckpt_path={self.train_dir}", f"grid={self.grid}",
            f"hydra.run.dir={self.eval_dir}", "progress=false", *self.evaluate_overrides, *extra,
        ]  # fmt: skip


def load_plans(names: Sequence[str], scale: str, out_dir: Path) -> list[ExperimentPlan]:
    """Compose every experiment with ``conf/train.yaml`` and read its ``reproduce`` section."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    valid = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; valid: {', '.join(valid)}")
    plans: dict[str, ExperimentPlan] = {}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for name in names:
            cfg = compose("train", overrides=[f"experiment={name}"])
            rep = cfg.get("reproduce")
            if rep is None:
                raise ValueError(f"conf/experiment/{name}.yaml has no reproduce section")
            rep = OmegaConf.to_container(rep, resolve=False)
            assert isinstance(rep, dict)
            scales = rep.get("scales") or {}
            if scale not in scales:
                raise ValueError(f"experiment {name} has no {scale!r} scale (has {sorted(scales)})")
            sc = scales[scale] or {}
            plan = ExperimentPlan(
                name=name,
                title=str(rep.get("title", name)),
                seed_result=str(rep.get("seed_result", "")),
                task=str(cfg.task.name),
                grid=str(rep["grid"]),
                train_from=rep.get("train_from"),
                train_overrides=[str(o) for o in sc.get("train") or []],
                evaluate_overrides=[str(o) for o in (rep.get("evaluate") or [])]
                + [str(o) for o in sc.get("evaluate") or []],
                figures=[str(f) for f in rep.get("figures") or []],
                outcomes=[dict(o) for o in rep.get("outcomes") or []],
            )
            for spec in plan.outcomes:
                if spec.get("kind") not in OUTCOMES:
                    raise ValueError(
                        f"experiment {name}: unknown outcome kind {spec.get('kind')!r}; "
                        f"kinds: {', '.join(OUTCOMES)}"
                    )
            plan.eval_dir = out_dir / name / "eval"
            plans[name] = plan
    for plan in plans.values():
        if plan.train_from:
            if plan.train_from not in plans:
                raise ValueError(
                    f"experiment {plan.name} reuses the trainings of {plan.train_from}: run it too "
                    f"(--experiments {plan.train_from},{plan.name})"
                )
            if list(plans).index(plan.train_from) > list(plans).index(plan.name):
                raise ValueError(f"{plan.train_from} must come before {plan.name}")
            plan.train_dir = out_dir / plan.train_from / "train"
        else:
            plan.train_dir = out_dir / plan.name / "train"
    return list(plans.values())


def _run(cmd: list[str], log_file: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd`` in the project root, output to ``log_file``; ``(wall s, CPU s)`` of the child.

    Raises ``RuntimeError`` with the log's tail on failure.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log_file, "w") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=PROJECT_ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        tail = log_file.read_text().splitlines()[-25:]
        raise RuntimeError(
            f"command failed (exit {proc.returncode}): {shlex.join(cmd)}\n" + "\n".join(tail)
        )
    return elapsed, cpu


def run_experiments(
    plans: Sequence[ExperimentPlan],
    *,
    common_train: Sequence[str] = (),
    common_evaluate: Sequence[str] = (),
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Train (unless reused) and evaluate every plan in order; timings go into ``plan.timings``."""
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("WANDB_SILENT", "true")
    for plan in plans:
        tcmd = plan.train_command(common_train)
        ecmd = plan.evaluate_command(common_evaluate)
        if dry_run:
            if tcmd:
                echo(shlex.join(tcmd))
            echo(shlex.join(ecmd))
            continue
        if tcmd:
            if plan.train_dir.exists() and any(plan.train_dir.iterdir()):
                raise FileExistsError(
                    f"{plan.train_dir} is not empty: choose a new --out directory"
                )
            echo(f"[{plan.name}] training ({plan.train_dir})")
            wall, cpu = _run(tcmd, plan.train_dir.parent / "train.log", env)
            plan.timings.update(train_s=wall, train_cpu_s=cpu)
        echo(f"[{plan.name}] evaluating ({plan.eval_dir})")
        wall, cpu = _run(ecmd, plan.eval_dir.parent / "evaluate.log", env)
        plan.timings.update(evaluate_s=wall, evaluate_cpu_s=cpu)
        (plan.eval_dir.parent / TIMINGS_FILE).write_text(json.dumps(plan.timings, indent=2) + "\n")
        echo(f"[{plan.name}] done: {plan.timings}")


def load_timings(plans: Sequence[ExperimentPlan], out_dir: Path) -> None:
    """Fill ``plan.timings`` of finished runs: ``<out>/<name>/timings.json``, else the
    ``[name] done: {...}`` lines of ``<out>/runner.log`` (the runner's console output)."""
    logged: dict[str, dict[str, float]] = {}
    runner_log = out_dir / "runner.log"
    if runner_log.is_file():
        for line in runner_log.read_text().splitlines():
            m = re.match(r"^\[(\w+)\] done: (\{.*\})$", line.strip())
            if m:
                logged[m.group(1)] = ast.literal_eval(m.group(2))
    for plan in plans:
        file = plan.eval_dir.parent / TIMINGS_FILE
        if file.is_file():
            plan.timings = json.loads(file.read_text())
        elif plan.name in logged:
            plan.timings = dict(logged[plan.name])


# -- measured outcomes -------------------------------------------------------------------------------
def _family_table(by_size: pd.DataFrame, ck: pd.DataFrame) -> pd.DataFrame:
    fam = ck.drop_duplicates("group").set_index("group")["family"]
    t = by_size.copy()
    t["family"] = t["group"].map(fam)
    return t


def _lattice_key(lattice: str) -> tuple[int, ...]:
    """``"16x16"`` -> ``(16, 16)``: lattices sort by their extents, not as strings."""
    return tuple(int(n) for n in str(lattice).split("x"))


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3g}"


def _ntrain_trend(df: pd.DataFrame, t: pd.DataFrame, spec: dict[str, object]) -> list[str]:
    """Per training-set size the family with the lowest median test loss; each family's trend."""
    out = []
    loss = df[(df["metric"] == "loss") & (df["status"] == "ok")]
    pc = loss.groupby(["checkpoint", "family", "n_train"])["value"].mean().reset_index()
    med = pc.groupby(["family", "n_train"])["value"].median().unstack("family")
    for n_train, row in med.iterrows():
        best = row.idxmin()
        out.append(
            f"n_train = {n_train} per point: lowest median test loss {best.upper()} ("
            + ", ".join(f"{f.upper()} {_fmt(v)}" for f, v in row.items())
            + ")."
        )
    for fam in med.columns:
        col = med[fam].dropna()
        if len(col) > 1:
            trend = "decreases" if col.iloc[-1] < col.iloc[0] else "does not decrease"
            out.append(
                f"{fam.upper()}: the median test loss {trend} from n_train = {col.index[0]} "
                f"({_fmt(col.iloc[0])}) to {col.index[-1]} ({_fmt(col.iloc[-1])})."
            )
    return out


def _kink(df: pd.DataFrame, t: pd.DataFrame, spec: dict[str, object]) -> list[str]:
    """Is the median test loss of ``family`` on ``lattice`` above both ``neighbours``'?"""
    family, lattice = str(spec["family"]), str(spec["lattice"])
    neighbours = [str(n) for n in spec["neighbours"]]  # type: ignore[attr-defined]
    med = t[t["family"] == family].set_index("lattice")["median"]
    if not {lattice, *neighbours} <= set(med.index):
        return []
    kink = med[lattice] > max(med[n] for n in neighbours)
    values = ", ".join(
        f"{lat} {_fmt(med[lat])}" for lat in (neighbours[0], lattice, *neighbours[1:])
    )
    return [
        f"{family.upper()} kink at {lattice}: {'yes' if kink else 'no'} (median test loss {values})."
    ]


def _split(df: pd.DataFrame, t: pd.DataFrame, spec: dict[str, object]) -> list[str]:
    """Median test loss per group and lattice below/above a threshold of one physics parameter."""
    parameter, threshold = str(spec["parameter"]), float(spec["threshold"])  # type: ignore[arg-type]
    below, above = str(spec["below"]), str(spec["above"])
    loss = df[(df["metric"] == "loss") & (df["status"] == "ok")].copy()
    loss["side"] = loss[parameter].map(lambda v: below if v <= threshold + 1e-9 else above)
    m = loss.groupby(["group", "lattice", "side"])["value"].median().unstack("side")
    out = []
    for (group, lat), row in sorted(m.iterrows(), key=lambda r: (r[0][0], _lattice_key(r[0][1]))):
        out.append(
            f"{group} on {lat}: median test loss {below} {_fmt(row.get(below, float('nan')))}, "
            f"{above} {_fmt(row.get(above, float('nan')))}."
        )
    return out


def _models_by(df: pd.DataFrame, by: str, drop: Sequence[str] = ()) -> pd.DataFrame:
    """Per model (preset + distinguishing overrides except ``data.n_train`` and ``drop``) and per
    value of ``by`` (``lattice`` or ``n_train``): the median, min and max over checkpoints of the
    mean test loss over the cells. ``by = lattice`` uses each model's largest ``n_train`` only;
    ``by = n_train`` the cells on the training lattice."""
    from scalar_ml.evaluation.plots import model_label

    if by not in ("lattice", "n_train"):
        raise ValueError(f"outcome option 'by' must be lattice or n_train, got {by!r}")
    loss = df[(df["metric"] == "loss") & (df["status"] == "ok")].copy()
    loss["model"] = [
        model_label(p, v, ["data.n_train", *drop])
        for p, v in zip(loss["preset"], loss["variant"], strict=True)
    ]
    if by == "lattice":
        largest = loss.groupby("model")["n_train"].transform("max")
        loss = loss[(loss["n_train"] == largest) | largest.isna()]
        loss["lattice"] = [f"{a}x{b}" for a, b in zip(loss["nt"], loss["nx"], strict=True)]
    else:
        loss = loss[(loss["nt"] == loss["train_nt"]) & (loss["nx"] == loss["train_nx"])]
    pc = loss.groupby(["checkpoint", "variant", "model", by], sort=False, dropna=False)["value"]
    pc = pc.mean().reset_index()
    agg = pc.groupby(["model", "variant", by], sort=False, dropna=False)["value"]
    return agg.agg(["median", "min", "max", "count"]).reset_index()


def _ranking(df: pd.DataFrame, t: pd.DataFrame, spec: dict[str, object]) -> list[str]:
    """Per lattice (or per ``n_train``): every model ranked by its median test loss, with the
    min–max over its checkpoints in brackets."""
    by = str(spec.get("by", "lattice"))
    m = _models_by(df, by)
    out = []
    for value, part in m.groupby(by, sort=False):
        part = part.sort_values("median")
        label = f"On {value}" if by == "lattice" else f"n_train = {value} per point"
        out.append(
            f"{label}, ranked by median test loss [min, max over seeds]: "
            + " < ".join(
                f"{r.model} {_fmt(r.median)} [{_fmt(r.min)}, {_fmt(r.max)}]"
                for r in part.itertuples()
            )
            + "."
        )
    return out


def _effect(df: pd.DataFrame, t: pd.DataFrame, spec: dict[str, object]) -> list[str]:
    """The effect of one override on each model: median test loss with ``with`` vs with ``without``
    (the runs differ only by that override), per lattice or ``n_train``, with the min–max range over
    checkpoints; a summary counts the models it lowered."""
    with_, without = str(spec["with"]), str(spec["without"])
    by = str(spec.get("by", "lattice"))
    key = with_.split("=", 1)[0]
    if without.split("=", 1)[0] != key:
        raise ValueError(f"outcome effect: {with_!r} and {without!r} must set the same key")
    m = _models_by(df, by, drop=[key])
    from scalar_ml.evaluation.plots import variant_entries

    m["arm"] = [
        with_ if with_ in variant_entries(v) else without if without in variant_entries(v) else ""
        for v in m["variant"]
    ]
    out, lower, total = [], 0, 0
    for (model, value), part in m.groupby(["model", by], sort=False):
        arms = {row.arm: row for row in part.itertuples() if row.arm}
        if set(arms) != {with_, without}:
            continue
        a, b = arms[without], arms[with_]
        ratio = b.median / a.median if a.median else float("nan")
        overlap = max(a.min, b.min) <= min(a.max, b.max)
        total += 1
        lower += bool(ratio < 1)
        where = f"on {value}" if by == "lattice" else f"n_train = {value}"
        out.append(
            f"{with_} on {model}, {where}: median test loss {_fmt(a.median)} "
            f"[{_fmt(a.min)}, {_fmt(a.max)}] without, {_fmt(b.median)} [{_fmt(b.min)}, "
            f"{_fmt(b.max)}] with (ratio {ratio:.2f}; ranges over seeds "
            + ("overlap" if overlap else "disjoint")
            + ")."
        )
    if total:
        out.insert(
            0,
            f"{with_} lowered the median test loss in {lower} of {total} comparisons "
            f"(model × {by}); the lines below give the min–max over seeds in brackets.",
        )
    return out


#: Outcome kinds an experiment can ask for (``reproduce.outcomes: [{kind: ..., ...}]``):
#: ``ntrain_trend`` (no options), ``kink`` (``family``, ``lattice``, ``neighbours``), ``split``
#: (``parameter``, ``threshold``, ``below``, ``above``: labels of the two sides), ``ranking``
#: (``by``: ``lattice`` or ``n_train``; models are presets with their distinguishing overrides),
#: ``effect`` (``with``, ``without``: two overrides of one key, e.g. ``data.augment=symmetry`` and
#: ``data.augment=none``; ``by``).
OUTCOMES: dict[str, Callable[[pd.DataFrame, pd.DataFrame, dict[str, object]], list[str]]] = {
    "ntrain_trend": _ntrain_trend,
    "kink": _kink,
    "split": _split,
    "ranking": _ranking,
    "effect": _effect,
}


def outcomes(plan: ExperimentPlan) -> list[str]:
    """Statements computed from the evaluation's tables (no hand-typed results)."""
    from scalar_ml.tasks import get_task

    d = plan.eval_dir
    from scalar_ml.evaluation.plots import _with_lattice

    ck = pd.read_csv(d / "checkpoints.csv")
    by_size = pd.read_csv(d / "loss_by_size.csv")
    df = _with_lattice(pd.read_csv(d / "evaluation.csv"))
    # eq, st, fl, then preset and sample size: the order of the summary tables
    order = df["family"].map({"eq": 0, "st": 1, "fl": 2}).fillna(3)
    df = (
        df.assign(_o=order)
        .sort_values(["_o", "preset", "n_train"], kind="stable")
        .drop(columns="_o")
    )
    out: list[str] = []
    t = _family_table(by_size, ck)
    lats = list(dict.fromkeys(t["lattice"]))
    # Which model has the lowest median test loss on each lattice (when groups are just models)?
    plain = ck["variant"].isna().all() or (ck["variant"].fillna("") == "").all()
    for lat in lats if plain else []:
        part = t[t["lattice"] == lat].sort_values("median")
        if len(part) > 1:
            ranking = ", ".join(f"{r.group} {_fmt(r.median)}" for r in part.itertuples())
            out.append(
                f"On {lat} the lowest median test loss is {part.iloc[0]['group']} ({ranking})."
            )
    for spec in plan.outcomes:
        out.extend(OUTCOMES[str(spec["kind"])](df, t, spec))
    if "acc" in get_task(plan.task).metric_names:
        acc = df[(df["metric"] == "acc") & (df["status"] == "ok")]
        m = acc.groupby(["group", "lattice"])["value"].mean().unstack("lattice")
        m = m[sorted(m.columns, key=_lattice_key)]
        for group, row in m.iterrows():
            out.append(
                f"{group}: mean accuracy "
                + ", ".join(f"{lat} {_fmt(v)}" for lat, v in row.items())
                + "."
            )
    na = df[df["status"] != "ok"].drop_duplicates(["group", "lattice"])
    for (group, note), part in na.groupby(["group", "note"], sort=False):
        sizes = ", ".join(str(lat) for lat in part["lattice"])
        out.append(
            f"{group}: not applicable on {sizes} ({str(note).removeprefix('not applicable: ')})."
        )
    return out


# -- results page ------------------------------------------------------------------------------------
_DIFFERENCES = """\
- **Scale.** The seed retrained 10 instances per architecture and trained on up to 20000 samples
  per task; the `{scale}` scale uses the overrides listed per experiment (fewer seeds, samples,
  epochs and test configurations). Numbers carry the statistical spread of few instances; the
  tables give mean and median as the seed does, the figures the min–max band.
- **Data.** Ensembles come from this project's worm sampler (SPEC §4) with measured
  decorrelation, test ensembles from independent Markov chains (grid seed 1000, training seed 0).
  The seed's own ensembles, training epochs, learning-rate schedule and stopping rule are not in
  the talk; this project uses Adam (lr 1e-3), early stopping on `val/loss` and the epoch limits
  listed below.
- **Sample sizes.** `data.n_train` counts configurations per μ value in task 1 (five training μ
  values, so the total is 5 × n_train) and per physics point in tasks 2 and 3 (two points); the
  seed's N_train = 4000 (task 2) and 20000 (task 3) are totals.
- **Grids.** Full grids (`conf/grid/*.yaml`) follow SPEC §5; reduced runs use fewer test
  configurations per cell (standard errors are in the CSVs) and, where listed, fewer lattices,
  μ values or worm counts.
- **Architectures** are the seed's Optuna winners with the exact parameter counts (SPEC §6).
"""


def _timing_text(timings: dict[str, float]) -> str:
    """``train 7.0 min wall (12.1 min CPU), evaluate ...`` from a plan's timings."""
    parts = []
    for step in ("train", "evaluate"):
        if f"{step}_s" in timings:
            text = f"{step} {timings[f'{step}_s'] / 60:.1f} min wall"
            if f"{step}_cpu_s" in timings:
                text += f" ({timings[f'{step}_cpu_s'] / 60:.1f} min CPU)"
            parts.append(text)
    return ", ".join(parts)


def _wall_s(plans: Sequence[ExperimentPlan]) -> float:
    return sum(v for pl in plans for k, v in pl.timings.items() if not k.endswith("cpu_s"))


def _ranking(loss: pd.DataFrame) -> str:
    """``best value (runner-up value)`` of the groups' median per-checkpoint mean loss."""
    if loss.empty:
        return "-"
    pc = loss.groupby(["group", "checkpoint"])["value"].mean().groupby("group").median()
    pc = pc.sort_values()
    text = f"{pc.index[0]} {_fmt(pc.iloc[0])}"
    if len(pc) > 1:
        text += f" ({pc.index[1]} {_fmt(pc.iloc[1])})"
    return text


def _glance_row(plan: ExperimentPlan) -> str:
    try:
        df = pd.read_csv(plan.eval_dir / "evaluation.csv")
    except FileNotFoundError:
        return f"| {plan.name} | (not run) | |"
    from scalar_ml.evaluation.plots import _with_lattice

    loss = _with_lattice(df[(df["metric"] == "loss") & (df["status"] == "ok")])
    if loss["n_train"].nunique() > 1:
        loss = loss[loss["n_train"] == loss["n_train"].max()]
    on_train = loss["lattice"] == loss["train_lattice"]
    return f"| {plan.name} | {_ranking(loss[on_train])} | {_ranking(loss[~on_train])} |"


def replot(eval_dir: Path, *, dpi: int = 110) -> list[str]:
    """Redraw an evaluation's figures (``plots/``) from its ``evaluation.csv``/``checkpoints.csv``."""
    from scalar_ml.evaluation.plots import _plt, write_figures

    plt = _plt()
    df = pd.read_csv(eval_dir / "evaluation.csv")
    ck = pd.read_csv(eval_dir / "checkpoints.csv")
    figures = write_figures(df, ck, eval_dir / "plots", dpi=dpi)
    for fig in figures:
        plt.close(fig.figure)
    return [str(fig.png) for fig in figures]


def _table_md(eval_dir: Path) -> str:
    """The summary tables of an evaluation, recomputed from its ``evaluation.csv``/``checkpoints.csv``."""
    from scalar_ml.evaluation.runner import summarize, summary_markdown

    try:
        df = pd.read_csv(eval_dir / "evaluation.csv")
        ck = pd.read_csv(eval_dir / "checkpoints.csv")
    except FileNotFoundError:
        return "(no evaluation found)"
    _, summary, by_size = summarize(df, ck)
    return summary_markdown(summary, by_size).strip()


def write_results(
    plans: Sequence[ExperimentPlan],
    *,
    scale: str,
    results: Path,
    figures_dir: Path,
    total_s: float,
    command: str,
    note: str = "",
) -> Path:
    """Write the results page and copy the listed figures (and the data behind them)."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    rel_fig = os.path.relpath(figures_dir, results.parent)
    lines = [
        "# Results: the seed's experiments reproduced",
        "",
        f"Written by `{command}` on {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} "
        f"({platform.machine()}, {os.cpu_count()} CPU cores, torch threads: "
        f"{os.environ.get('OMP_NUM_THREADS', 'default')}); total wall time "
        f"{total_s / 60:.1f} min. Scale: **{scale}**"
        + (
            " (a smoke test of the pipeline; the numbers mean nothing)."
            if scale == "smoke"
            else "."
        ),
        "",
        *([note, ""] if note else []),
        "Every number and figure below was produced by that run; the run directories hold the tidy",
        "CSVs (`evaluation.csv`), per-checkpoint tables and the data behind each figure.",
        'Whether EQ beats ST and FL is read off the measured tables ("Measured outcomes").',
        "",
        "## What differs from the seed",
        "",
        _DIFFERENCES.format(scale=scale),
        "## At a glance",
        "",
        "Lowest median test loss (per checkpoint: mean over the grid cells; then the median over",
        "its seeds) on the training lattice and on the other lattices of each experiment's grid.",
        "Where the sample size varies, only the largest is compared.",
        "",
        "| experiment | training lattice: best (runner-up) | other lattices: best (runner-up) |",
        "|---|---|---|",
        *[_glance_row(plan) for plan in plans],
        "",
    ]
    for plan in plans:
        d = plan.eval_dir
        lines += [f"## {plan.title}", "", f"*Seed:* {plan.seed_result}", ""]
        train_cmd = plan.train_command()
        lines += ["Commands (run directories under the runner's `--out`):", "", "```bash"]
        if train_cmd:
            lines.append(
                shlex.join(["python", *train_cmd[1:]]).replace(str(PROJECT_ROOT) + "/", "")
            )
        else:
            lines.append(f"# trainings reused from {plan.train_from}")
        lines += [
            shlex.join(["python", *plan.evaluate_command()[1:]]).replace(
                str(PROJECT_ROOT) + "/", ""
            ),
            "```",
            "",
        ]
        if plan.timings:
            lines += [
                "Time: " + _timing_text(plan.timings) + ".",
                "",
            ]
        lines += [_table_md(d), ""]
        try:
            found = outcomes(plan)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            found = [f"(could not compute outcomes: {exc})"]
        if found:
            lines += ["**Measured outcomes:**", ""] + [f"- {s}" for s in found] + [""]
        plot_dir = d / "plots"
        target = figures_dir / plan.name
        if target.is_dir():  # this experiment's figures of an earlier page
            shutil.rmtree(target)
        for stem in plan.figures:
            for png in sorted(plot_dir.glob(f"{stem}*.png")):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(png, target / png.name)
                csv = png.with_suffix(".csv")
                if csv.is_file():
                    shutil.copy2(csv, target / csv.name)
                lines += [f"![{png.stem}]({rel_fig}/{plan.name}/{png.name})", ""]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines).rstrip() + "\n")
    return results


def _strip_page_options(argv: list[str]) -> list[str]:
    """The command line without the options that only shape the page (--report-only, --note X)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif a != "--report-only" and not a.startswith("--note="):
            out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m scalar_ml.evaluation.reproduce",
        description="Train and evaluate the seed's experiments; write docs/results.md.",
    )
    p.add_argument("--scale", choices=SCALES, default="reduced")
    p.add_argument(
        "--experiments",
        default=None,
        help="comma-separated subset (default: all, in order)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directories (default logs/reproduce/<scale>-<time>)",
    )
    p.add_argument("--results", type=Path, default=PROJECT_ROOT / "docs" / "results.md")
    p.add_argument(
        "--figures-dir",
        type=Path,
        default=None,
        help="where the page's figures go (default: <results dir>/results)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="ensemble cache (default: the project's data/ or $SCALAR_ML_DATA_DIR)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--note", default="", help="a remark printed on the results page (run context)")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the results page from the finished runs in --out (no training)",
    )
    args = p.parse_args(argv)

    names = (
        experiment_names()
        if args.experiments is None
        else [n.strip() for n in args.experiments.split(",") if n.strip()]
    )
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if args.report_only and args.out is None:
        p.error("--report-only needs --out (the directory of the finished runs)")
    out = (args.out or PROJECT_ROOT / "logs" / "reproduce" / f"{args.scale}-{stamp}").resolve()
    plans = load_plans(names, args.scale, out)
    extra = [f"paths.data_dir={args.data_dir.resolve()}"] if args.data_dir else []
    t0 = time.perf_counter()
    if args.report_only:
        missing = [str(pl.eval_dir) for pl in plans if not (pl.eval_dir / "summary.md").is_file()]
        if missing:
            p.error(f"no finished evaluation in {', '.join(missing)}")
        load_timings(plans, out)
        for pl in plans:  # figures from the tidy CSVs, with the current plotting code
            replot(pl.eval_dir)
    elif args.dry_run:
        run_experiments(plans, common_train=extra, common_evaluate=extra, dry_run=True)
        return 0
    else:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "runner.log", "a") as log_file:

            def echo(line: str) -> None:
                print(line, flush=True)
                log_file.write(line + "\n")
                log_file.flush()

            run_experiments(plans, common_train=extra, common_evaluate=extra, echo=echo)
    figures_dir = args.figures_dir or args.results.parent / "results"
    argv_list = list(argv if argv is not None else sys.argv[1:])
    argv_text = " ".join(a for a in _strip_page_options(argv_list))
    page = write_results(
        plans,
        scale=args.scale,
        results=args.results.resolve(),
        figures_dir=figures_dir.resolve(),
        total_s=(_wall_s(plans) if args.report_only else time.perf_counter() - t0),
        command=f"python -m scalar_ml.evaluation.reproduce {argv_text}".strip(),
        note=" ".join(
            t
            for t in (
                args.note,
                "The page was rewritten from the finished run directories with `--report-only`; "
                "the total wall time is the sum of the per-experiment times."
                if args.report_only
                else "",
            )
            if t
        ),
    )
    print(f"wrote {page} (run directories in {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
