r"""``evaluate(cfg)``: trained checkpoints over a grid of lattices × physics points × worm counts.

What :func:`evaluate` does, in order (every check happens before any sampling or evaluation, in
:func:`plan_evaluation`, which raises :class:`~scalar_ml.cli.UserError` for a mistake of the input;
``evaluate.py`` prints it as one line):

1. finds the checkpoints of ``cfg.ckpt_path`` (file, run dir, multirun dir, glob or a list; see
   :mod:`.checkpoints`) and loads them weights-only;
2. picks the grid: ``cfg.grid`` (a ``conf/grid/<name>.yaml`` node); the default ``grid=auto`` takes
   ``conf/grid/<task>.yaml`` of each checkpoint's task, with any non-null value of ``cfg.grid``
   (e.g. ``grid.n_configs=64``) overriding it; validates it, the sampler options, and that the test
   data seed differs from every checkpoint's training data seed;
3. for each (lattice, point) block loads the ensemble from the cache (sampling it on a miss) — only
   when some checkpoint can take the lattice — then builds every cell's test set
   (:mod:`.datasets`) and evaluates every checkpoint on it (:mod:`.metrics`); a network that cannot
   take a lattice (fl on another size; a kernel larger than the lattice) yields ``not applicable``
   rows (value NaN) instead of an error;
4. writes into the run directory (``cfg.paths.output_dir``):

   - ``evaluation.csv``: the tidy table, one row per checkpoint × cell × metric, columns
     :data:`COLUMNS`;
   - ``checkpoints.csv``: one row per checkpoint (model, variant, seed, n_train, training lattice,
     validation loss, and the per-checkpoint test losses of the summary);
   - ``summary.csv`` / ``summary.md``: mean and median over the checkpoints of each group (one
     architecture and training setup) of the validation loss, the test loss on the training lattice
     and the test loss over all grid lattices ("-" when some lattice is not applicable), like the
     seed's "test loss vs validation loss" table; ``loss_by_size.csv``: the same per lattice;
   - ``plots/<stem>.png`` with ``plots/<stem>.csv`` (the plotted numbers), see :mod:`.plots`;
   - ``grids.yaml`` (the grids used) and ``config_resolved.yaml``;

5. logs the figures and the summary to the configured loggers (TensorBoard ``add_figure``/
   ``add_text``, wandb images and a table; ``logger=none`` by default).

Nothing existing is overwritten: a run directory that already holds ``evaluation.csv`` is refused.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from scalar_ml.evaluation.checkpoints import (
    CheckpointRecord,
    assign_labels,
    find_checkpoints,
    load_checkpoint,
)
from scalar_ml.evaluation.datasets import build_cell_data, check_disjoint_seeds, load_block
from scalar_ml.evaluation.grid import GRID_DIR, Grid, format_lattice
from scalar_ml.evaluation.metrics import cell_metrics, predict
from scalar_ml.physics.params import Lattice
from scalar_ml.physics.theory import get_theory
from scalar_ml.tasks import get_task

__all__ = [
    "CHECKPOINT_COLUMNS",
    "COLUMNS",
    "EVALUATION_FILE",
    "EvaluationPlan",
    "evaluate",
    "evaluate_cells",
    "plan_evaluation",
    "resolve_grids",
    "select_runs",
    "summarize",
    "write_outputs",
]

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.csv"

#: Columns of the tidy ``evaluation.csv`` (one row per checkpoint × cell × metric); the physics
#: point takes one column per parameter of the theory (eta, lam, mu). A lattice is ``lattice``
#: (``"8x8"``, ``"8x8x8"``: the identity used for grouping) and, for 2D lattices, ``nt``, ``nx``
#: (on d = 3, 4 dimensional lattices ``nt`` is the temporal extent and ``nx`` is empty).
COLUMNS: tuple[str, ...] = (
    "checkpoint", "run", "group", "variant", "task", "family", "preset", "seed", "n_train",
    "train_nt", "train_nx", "train_lattice", "nt", "nx", "lattice", *get_theory().parameter_names,
    "worms", "metric", "value", "stderr", "n_configs", "status", "note",
)  # fmt: skip

#: Columns of ``checkpoints.csv`` (one row per checkpoint).
CHECKPOINT_COLUMNS: tuple[str, ...] = (
    "checkpoint", "run", "group", "variant", "task", "family", "preset", "seed", "n_train",
    "train_nt", "train_nx", "train_lattice", "data_seed", "n_parameters", "epoch", "val_loss",
    "test_loss_train_size", "test_loss_all", "acc_train_size", "acc_all", "n_cells",
    "n_not_applicable", "path",
)  # fmt: skip


# -- grids ---------------------------------------------------------------------------------------
def resolve_grids(grid_cfg: Any, tasks: Sequence[str]) -> dict[str, Grid]:
    """The grid of each task: ``grid_cfg`` itself, or with ``task: auto`` the task's default grid
    (``conf/grid/<task.grid_name>.yaml``) overridden by the non-null values of ``grid_cfg``."""
    node = (
        OmegaConf.to_container(grid_cfg, resolve=True)
        if isinstance(grid_cfg, DictConfig)
        else grid_cfg
    )
    if node is None:
        node = {"task": "auto"}
    if not isinstance(node, Mapping):
        raise ValueError(f"grid must be a grid config (conf/grid/*.yaml), got {node!r}")
    if node.get("task") != "auto":
        grid = Grid.from_config(node)
        wrong = sorted(set(tasks) - {grid.task})
        if wrong:
            raise ValueError(
                f"grid {grid.name or '(custom)'} is a {grid.task} grid but checkpoint(s) of task(s) "
                f"{', '.join(wrong)} were given; choose a {'/'.join(wrong)} grid (conf/grid/) or "
                "grid=auto"
            )
        return {grid.task: grid}
    extra = {
        k: v for k, v in node.items() if k not in ("task", "name", "description") and v is not None
    }
    out = {}
    for task in tasks:
        grid_name = get_task(task).grid_name
        base = OmegaConf.to_container(OmegaConf.load(GRID_DIR / f"{grid_name}.yaml"), resolve=True)
        assert isinstance(base, dict)
        base.update(extra)
        if extra.get("points") is not None:
            for key in get_theory().parameter_names:
                base.pop(key, None)
        out[task] = Grid.from_config(base, name=str(base.get("name") or grid_name))
    return out


def select_runs(
    loaded: list[tuple[CheckpointRecord, Any]], select: Sequence[str]
) -> list[tuple[CheckpointRecord, Any]]:
    """Keep the checkpoints whose run was started with every override in ``select``.

    ``select`` holds Hydra override strings exactly as they appear in the run's
    ``.hydra/overrides.yaml`` (e.g. ``data.n_train=320``, ``model=eq``): a way to evaluate some
    variants of a multirun. Raises ``ValueError`` when nothing is left (listing what exists).
    """
    wanted = [
        str(s)
        for s in (OmegaConf.to_container(select) if isinstance(select, ListConfig) else select)
    ]
    if not wanted:
        return loaded
    kept = [(r, m) for r, m in loaded if all(w in r.overrides for w in wanted)]
    if not kept:
        seen = sorted({o for r, _ in loaded for o in r.overrides})
        raise ValueError(
            f"select={wanted} matches none of the {len(loaded)} checkpoint(s); their runs' "
            f"overrides: {', '.join(seen) or 'none recorded'}"
        )
    log.info("select=%s: %d of %d checkpoint(s)", wanted, len(kept), len(loaded))
    return kept


def _applicability(module: Any, lattice: Lattice) -> tuple[bool, str]:
    """Can the network take ``lattice``? ``(ok, note)``; the note explains a refusal or floor pooling."""
    from scalar_ml.models.spec import SpecError, format_size

    net = module.net
    if net.dims != lattice.dims:
        return False, (
            f"not applicable: a {net.dims}-dimensional network and a {lattice.dims}-dimensional "
            "lattice"
        )
    if net.input_size is not None and tuple(net.input_size) != lattice.shape:
        return False, (
            f"not applicable: fl network takes only {format_size(net.input_size)} lattices "
            "(flattening fixes the input size)"
        )
    try:
        trace = net.trace(lattice.shape)
    except SpecError as exc:
        return False, f"not applicable: {exc}"
    if trace.floor_notes:
        return True, "floor pooling: " + "; ".join(trace.floor_notes)
    return True, ""


def _base_row(rec: CheckpointRecord) -> dict[str, Any]:
    tl = rec.train_lattice
    return {
        "checkpoint": str(rec.path),
        "run": rec.label,
        "group": rec.group,
        "variant": rec.variant,
        "task": rec.task,
        "family": rec.family,
        "preset": rec.model_name,
        "seed": rec.seed,
        "n_train": rec.n_train,
        "train_nt": tl[0] if tl else None,
        "train_nx": tl[1] if tl and len(tl) == 2 else None,
        "train_lattice": format_lattice(tl) if tl else None,
    }


def _lattice_keys(lattice: Lattice) -> dict[str, Any]:
    """The lattice columns of a cell: ``nt``, ``nx`` (2D only, else empty) and ``lattice``."""
    return {
        "nt": lattice.nt,
        "nx": lattice.nx if lattice.dims == 2 else None,
        "lattice": format_lattice(lattice),
    }


# -- summary ---------------------------------------------------------------------------------------
def _mean_or_nan(values: pd.Series, *, require_all: bool) -> float:
    v = values.to_numpy(dtype=float)
    if v.size == 0 or (require_all and np.isnan(v).any()):
        return math.nan
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else math.nan


def summarize(
    df: pd.DataFrame, checkpoints: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per-checkpoint test losses, their mean/median per group, and the loss per lattice size.

    Per checkpoint: ``test_loss_train_size`` = mean ``loss`` over the cells on its training lattice;
    ``test_loss_all`` = mean over all cells of the grid, NaN when some cell is not applicable (the
    seed's "-"); the same for ``acc`` (detection, counting). Returns ``(checkpoints, summary,
    loss_by_size)``.
    """
    ck = checkpoints.copy()
    for col in ("test_loss_train_size", "test_loss_all", "acc_train_size", "acc_all"):
        ck[col] = math.nan
    ck["n_cells"] = 0
    ck["n_not_applicable"] = 0
    for i, row in ck.iterrows():
        mine = df[df["checkpoint"] == row["checkpoint"]]
        for metric, prefix in (("loss", "test_loss"), ("acc", "acc")):
            m = mine[mine["metric"] == metric]
            if m.empty:
                continue
            on_train = m[m["lattice"] == row["train_lattice"]]
            ck.loc[i, f"{prefix}_train_size"] = _mean_or_nan(on_train["value"], require_all=False)
            ck.loc[i, f"{prefix}_all"] = _mean_or_nan(m["value"], require_all=True)
        loss = mine[mine["metric"] == "loss"]
        ck.loc[i, "n_cells"] = len(loss)
        ck.loc[i, "n_not_applicable"] = int((loss["status"] != "ok").sum())
    rows = []
    for (task, group), part in ck.groupby(["task", "group"], sort=False):
        row: dict[str, Any] = {
            "task": task,
            "group": group,
            "preset": part["preset"].iloc[0],
            "family": part["family"].iloc[0],
            "variant": part["variant"].iloc[0],
            "n_train": part["n_train"].iloc[0],
            "train_lattice": part["train_lattice"].iloc[0],
            "n_checkpoints": len(part),
        }
        for col in (
            "val_loss",
            "test_loss_train_size",
            "test_loss_all",
            "acc_train_size",
            "acc_all",
        ):
            v = part[col].to_numpy(dtype=float)
            # One missing value (n/a lattice) makes the group's entry "-", as in the seed's table.
            row[f"{col}_mean"] = float(v.mean()) if v.size and not np.isnan(v).any() else math.nan
            row[f"{col}_median"] = (
                float(np.median(v)) if v.size and not np.isnan(v).any() else math.nan
            )
        rows.append(row)
    summary = pd.DataFrame(rows)
    if not summary.empty:  # models in family order (eq, st, fl), then sample size and variant
        summary = summary.sort_values(
            ["task", "family", "preset", "n_train", "variant"],
            key=lambda c: c.map({"eq": 0, "st": 1, "fl": 2}) if c.name == "family" else c,
            kind="stable",
        ).reset_index(drop=True)
    loss = df[(df["metric"] == "loss") & (df["status"] == "ok")]
    # nx is empty on d > 2 dimensional lattices: keep those groups (dropna=False)
    pc = (
        loss.groupby(
            ["task", "group", "checkpoint", "nt", "nx", "lattice"], sort=False, dropna=False
        )["value"]
        .mean()
        .reset_index()
    )
    by_size = (
        pc.groupby(["task", "group", "nt", "nx", "lattice"], sort=False, dropna=False)["value"]
        .agg(["mean", "median", "min", "max", "count"])
        .reset_index()
        .rename(columns={"count": "n_checkpoints"})
    )
    return ck, summary, by_size


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.3e}"
    return str(x)


def summary_markdown(summary: pd.DataFrame, by_size: pd.DataFrame) -> str:
    """The summary as Markdown tables (the seed's validation/test loss table, and loss per size)."""
    lines = []
    for task, part in summary.groupby("task", sort=False):
        acc = "acc" in get_task(str(task)).metric_names
        head = [
            "model",
            "n",
            "val loss mean",
            "val loss median",
            "test loss (train size) mean",
            "median",
            "test loss (all sizes) mean",
            "median",
        ]
        if acc:
            head += ["acc (all sizes) mean", "median"]
        lines += [f"### {task}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, r in part.iterrows():
            cells = [str(r["group"]), str(r["n_checkpoints"])] + [
                _fmt(r[f"{c}_{s}"])
                for c in ("val_loss", "test_loss_train_size", "test_loss_all")
                for s in ("mean", "median")
            ]
            if acc:
                cells += [_fmt(r["acc_all_mean"]), _fmt(r["acc_all_median"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        sizes = by_size[by_size["task"] == task]
        if not sizes.empty:
            lats = list(dict.fromkeys(sizes["lattice"]))
            lines += [
                f"Test loss per lattice size (median over checkpoints), {task}:",
                "",
                "| model | " + " | ".join(lats) + " |",
                "|" + "---|" * (len(lats) + 1),
            ]
            for group in dict.fromkeys(part["group"]):
                g = sizes[sizes["group"] == group].set_index("lattice")["median"]
                lines.append(f"| {group} | " + " | ".join(_fmt(g.get(lat)) for lat in lats) + " |")
            lines.append("")
    return "\n".join(lines)


# -- loggers ---------------------------------------------------------------------------------------
def _log_outputs(
    loggers: Sequence[Any], figures: Sequence[Any], summary: pd.DataFrame, text: str
) -> None:
    for lg in loggers:
        kind = type(lg).__name__
        try:
            if kind == "TensorBoardLogger":
                exp = lg.experiment
                for fig in figures:
                    exp.add_figure(f"evaluation/{fig.stem}", fig.figure, close=False)
                exp.add_text("evaluation/summary", text)
                exp.flush()
            elif kind == "WandbLogger":
                for fig in figures:
                    lg.log_image(key=f"evaluation/{fig.stem}", images=[str(fig.png)])
                if not summary.empty:
                    lg.log_table(key="evaluation/summary", dataframe=summary.astype(str))
            else:
                log.info(
                    "logger %s cannot show figures; skipped (the files are in the run dir)", kind
                )
        except Exception as exc:  # a logger failure must not lose the computed results
            log.error("logging to %s failed: %s", kind, exc)


def _finish_wandb() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


# -- main entry ------------------------------------------------------------------------------------
@dataclass
class EvaluationPlan:
    """What an evaluation does, checked before any sampling: checkpoints, grids, options."""

    cfg: DictConfig
    output_dir: Path
    records: list[CheckpointRecord]
    modules: list[Any]
    grids: dict[str, Grid]
    sampler: dict[str, Any]
    cache_dir: Any
    batch_size: int
    loggers: list[Any]


def plan_evaluation(cfg: DictConfig) -> EvaluationPlan:
    """Find and load the checkpoints, resolve and validate the grids; no sampling, no writing.

    Every mistake of the input (a missing checkpoint, a bad grid value, a grid of another task, a
    grid seed equal to a training data seed, a run directory that holds results) raises
    :class:`~scalar_ml.cli.UserError`.
    """
    from scalar_ml.cli import UserError, call_checked
    from scalar_ml.config import integer
    from scalar_ml.training.utils import instantiate_dict

    output_dir = Path(cfg.paths.output_dir)
    if (output_dir / EVALUATION_FILE).exists():
        raise UserError(
            f"{output_dir / EVALUATION_FILE} exists: choose a new run directory (the default "
            "hydra.run.dir is unique per run) instead of overwriting"
        )
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.get("ckpt_path") in (None, "", []):
        raise UserError(
            "ckpt_path is required: give ckpt_path=<checkpoint file, run directory, multirun "
            "directory or glob>"
        )
    batch_size = integer("batch_size", cfg.get("batch_size", 512), minimum=1)
    which = str(cfg.get("checkpoint", "best"))
    paths = call_checked(find_checkpoints, cfg.ckpt_path, which, what="ckpt_path")
    loaded = call_checked(
        select_runs, [call_checked(load_checkpoint, p) for p in paths], cfg.get("select") or []
    )
    records = [r for r, _ in loaded]
    modules = [m for _, m in loaded]
    assign_labels(records)
    tasks = list(dict.fromkeys(r.task for r in records))
    grids = call_checked(resolve_grids, cfg.get("grid"), tasks)
    sampler = (
        dict(OmegaConf.to_container(cfg.sampler, resolve=True) or {}) if cfg.get("sampler") else {}
    )
    for task, grid in grids.items():
        call_checked(grid.validate_sampler, sampler)
        for rec in records:
            if rec.task == task:
                call_checked(check_disjoint_seeds, grid.seed, rec.data_seed, rec.label)
    loggers = call_checked(instantiate_dict, cfg.get("logger"), "logger")
    return EvaluationPlan(
        cfg=cfg,
        output_dir=output_dir,
        records=records,
        modules=modules,
        grids=grids,
        sampler=sampler,
        cache_dir=cfg.get("cache_dir") or cfg.paths.get("data_dir"),
        batch_size=batch_size,
        loggers=loggers,
    )


def evaluate_cells(plan: EvaluationPlan) -> tuple[pd.DataFrame, list[Any]]:
    """The tidy table: every checkpoint on every cell of its task's grid (sampling missing
    ensembles); and the task's example figures (:meth:`~scalar_ml.tasks.Task.example_figures`) of
    the grid's first and last lattice per checkpoint (its first point, its largest worm count)."""
    from tqdm.auto import tqdm

    from scalar_ml.evaluation.plots import _slug

    records, modules, grids = plan.records, plan.modules, plan.grids
    progress = plan.cfg.get("progress")
    show = sys.stderr.isatty() if progress is None else bool(progress)
    total = sum(len(g.cells()) * sum(r.task == t for r in records) for t, g in grids.items())
    bar = tqdm(total=total, desc="evaluate", unit="cell", disable=not show)
    rows: list[dict[str, Any]] = []
    examples: list[Any] = []
    try:
        for task, grid in grids.items():
            mine = [(r, m) for r, m in zip(records, modules, strict=True) if r.task == task]
            names = get_task(task).metric_names
            for lattice, params in grid.blocks():
                status = {id(r): _applicability(m, lattice) for r, m in mine}
                cell_keys = {**_lattice_keys(lattice), **get_theory().values(params)}
                ensemble = None
                if any(ok for ok, _ in status.values()):
                    ensemble = load_block(
                        params, lattice, grid.n_configs, grid.seed, cache_dir=plan.cache_dir,
                        sampler_options=plan.sampler,
                    )  # fmt: skip
                for worms in grid.worms:
                    data = None
                    if ensemble is not None:
                        data = build_cell_data(
                            task, ensemble, params, lattice, worms, grid.seed,
                            max_worm_length=grid.max_worm_length,
                        )  # fmt: skip
                    for rec, module in mine:
                        ok, note = status[id(rec)]
                        base = {**_base_row(rec), **cell_keys, "worms": worms}
                        if not ok or data is None:
                            rows.extend(
                                {**base, "metric": name, "value": math.nan, "stderr": math.nan,
                                 "n_configs": 0, "status": "not applicable", "note": note}
                                for name in names
                            )  # fmt: skip
                        else:
                            pred, raw = predict(module, data.inputs, batch_size=plan.batch_size)
                            rows.extend(
                                {**base, "metric": name, "value": value, "stderr": se,
                                 "n_configs": len(data), "status": "ok", "note": note}
                                for name, value, se in cell_metrics(task, pred, raw, data.targets)
                            )  # fmt: skip
                            if (
                                params == grid.points[0]
                                and worms == max(grid.worms)
                                and lattice in (grid.lattices[0], grid.lattices[-1])
                            ):
                                lat = format_lattice(lattice)
                                examples += get_task(task).example_figures(
                                    data.inputs, data.targets, pred,
                                    label=f"{rec.label}, {lat}, {get_theory().label(params)}, "
                                    f"{worms} worms",
                                    stem=f"examples_{_slug(rec.label)}_{lat}",
                                )  # fmt: skip
                        bar.update(1)
                    bar.set_postfix_str(f"{format_lattice(lattice)} {get_theory().label(params)}")
    finally:
        bar.close()
    return pd.DataFrame(rows, columns=list(COLUMNS)), examples


def write_outputs(
    plan: EvaluationPlan, df: pd.DataFrame, examples: Sequence[Any] = ()
) -> dict[str, Any]:
    """Tables, grids, config and figures into the run directory; figures and summary to the loggers."""
    cfg, output_dir, records, loggers = plan.cfg, plan.output_dir, plan.records, plan.loggers
    ck = pd.DataFrame(
        [
            {
                **_base_row(r), "data_seed": r.data_seed, "n_parameters": r.n_parameters,
                "epoch": r.epoch, "val_loss": r.val_loss, "path": str(r.path),
            }
            for r in records
        ]
    )  # fmt: skip
    ck, summary, by_size = summarize(df, ck)
    ck = ck[list(CHECKPOINT_COLUMNS)]
    output_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(output_dir / EVALUATION_FILE, index=False)
    ck.to_csv(output_dir / "checkpoints.csv", index=False)
    summary.to_csv(output_dir / "summary.csv", index=False)
    by_size.to_csv(output_dir / "loss_by_size.csv", index=False)
    text = summary_markdown(summary, by_size)
    (output_dir / "summary.md").write_text(text + "\n")
    OmegaConf.save(
        OmegaConf.create({t: g.describe() for t, g in plan.grids.items()}),
        output_dir / "grids.yaml",
    )
    OmegaConf.save(cfg, output_dir / "config_resolved.yaml", resolve=True)

    figure_files: list[str] = []
    if cfg.get("plots", True):
        from scalar_ml.evaluation.plots import _plt, write_figures

        plt = _plt()
        dpi = int(cfg.get("dpi", 110))
        figures = write_figures(df, ck, output_dir / "plots", dpi=dpi)
        figures += write_figures(df, ck, output_dir / "plots", dpi=dpi, figures=examples)
        figure_files = [str(fig.png) for fig in figures]
        try:
            _log_outputs(loggers, figures, summary, text)
        finally:
            for fig in figures:
                plt.close(fig.figure)
    else:
        if loggers:
            _log_outputs(loggers, [], summary, text)
        from scalar_ml.evaluation.plots import _plt

        for fig in examples:
            _plt().close(fig.figure)
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        _finish_wandb()
    return {
        "evaluation_csv": str(output_dir / EVALUATION_FILE),
        "checkpoints_csv": str(output_dir / "checkpoints.csv"),
        "summary_csv": str(output_dir / "summary.csv"),
        "figures": figure_files,
        "n_rows": len(df),
        "summary": summary.to_dict(orient="records"),
        "summary_md": text,
    }


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the checkpoints of ``cfg.ckpt_path`` over the grid(s); see the module docstring.

    :func:`plan_evaluation` (checks, no work), :func:`evaluate_cells`, :func:`write_outputs`.
    Returns a dict with the output paths and the summary rows.
    """
    t_start = time.perf_counter()
    plan = plan_evaluation(cfg)
    log.info(
        "evaluating %d checkpoint(s) on %s",
        len(plan.records),
        ", ".join(f"{g.name or t} ({len(g.cells())} cells)" for t, g in plan.grids.items()),
    )
    df, examples = evaluate_cells(plan)
    result = write_outputs(plan, df, examples)
    elapsed = time.perf_counter() - t_start
    log.info(
        "wrote %s (%d rows) in %.1f s\n%s",
        plan.output_dir / EVALUATION_FILE,
        len(df),
        elapsed,
        result.pop("summary_md"),
    )
    return {**result, "elapsed_s": round(elapsed, 3)}
