r"""Figures of an evaluation, each returned with the table of numbers it shows.

Every function takes the tidy evaluation table (one row per checkpoint × cell × metric, see
:mod:`scalar_ml.evaluation.runner`) and, where needed, the per-checkpoint table, and returns a list
of :class:`Figure` (a stem, a matplotlib figure and a DataFrame with exactly the plotted values).
The runner writes ``<stem>.png`` and ``<stem>.csv`` side by side and logs the figures. Which figures
an evaluation gets is up to each task (:meth:`scalar_ml.tasks.Task.figures`); the functions here are
generic: the physics axes come from the theory (:mod:`scalar_ml.physics.theory`: heat maps over its
``map_parameters`` η and μ, lines along its ``scan_parameter`` μ), the targets from the caller.

Conventions: a *group* is one architecture and training setup (``CheckpointRecord.group``);
values of a group are aggregated over its checkpoints (seeds): the line is the **median**, the band
spans **min–max** over checkpoints; the CSVs also hold the mean and the number of checkpoints.
Lattices are written ``NtxNx`` (time first); cells a network cannot take (fl on other sizes) are
absent from the lines and marked "n/a" in the maps.

matplotlib is imported lazily with the Agg backend (no display needed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalar_ml.physics.theory import get_theory

__all__ = [
    "Figure",
    "accuracy_maps",
    "count_pred_vs_true",
    "loss_maps",
    "loss_vs_scan",
    "loss_vs_size",
    "make_figures",
    "model_label",
    "prediction_vs_scan",
    "variant_entries",
    "write_figures",
]


@dataclass
class Figure:
    """A figure, its file stem (no extension) and the data behind it."""

    stem: str
    figure: Any
    data: pd.DataFrame
    title: str = ""
    png: Path | None = None  # set when written


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _group_colors(groups: Any) -> dict[str, Any]:
    """One fixed colour per group (the same in every panel, whichever groups a panel shows)."""
    plt = _plt()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {g: cycle[i % len(cycle)] for i, g in enumerate(dict.fromkeys(groups))}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


#: The lattice columns of the tidy table: ``lattice`` (``"8x8"``, ``"8x8x8"``) identifies a
#: lattice; ``nt``, ``nx`` are kept in every grouping (``nx`` is empty in d > 2 dimensions).
_LATTICE = ("nt", "nx", "lattice")


def _with_lattice(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the columns ``lattice`` and ``train_lattice`` (tables written before they existed
    have only ``nt, nx`` and ``train_nt, train_nx``, all 2D)."""
    for column, (nt, nx) in (
        ("lattice", ("nt", "nx")),
        ("train_lattice", ("train_nt", "train_nx")),
    ):
        if column not in df.columns and {nt, nx} <= set(df.columns):
            df = df.assign(
                **{column: [f"{int(a)}x{int(b)}" for a, b in zip(df[nt], df[nx], strict=True)]}
            )
    return df


def _lattice_order(df: pd.DataFrame) -> list[str]:
    """Lattices (``"8x8"``) in the order they first appear (the grid's order)."""
    return list(dict.fromkeys(str(v) for v in _with_lattice(df)["lattice"]))


def _on_training_lattice(df: pd.DataFrame) -> pd.Series:
    """Rows of cells on their checkpoint's training lattice."""
    df = _with_lattice(df)
    return df["lattice"] == df["train_lattice"]


def variant_entries(variant: Any) -> list[str]:
    """The overrides of a checkpoint's ``variant`` (joined by commas outside brackets; NaN or ``""``:
    none).

    >>> variant_entries("data.augment=symmetry,data.mu_values=[0.91,1.0],data.n_train=20")
    ['data.augment=symmetry', 'data.mu_values=[0.91,1.0]', 'data.n_train=20']
    """
    if not isinstance(variant, str) or not variant:
        return []
    return [v for v in re.split(r",(?![^\[]*\])", variant) if v]


def model_label(preset: str, variant: Any, without: Sequence[str] = ()) -> str:
    """``preset`` followed by the ``variant``'s overrides except those whose key is in ``without``
    (e.g. ``data.n_train``: one model trained on several sample sizes).

    >>> model_label("observables/st", "data.augment=symmetry,data.n_train=20", ["data.n_train"])
    'observables/st data.augment=symmetry'
    """
    kept = [v for v in variant_entries(variant) if v.split("=", 1)[0].lstrip("+~") not in without]
    return " ".join([str(preset), ",".join(kept)]) if kept else str(preset)


def _agg(values: pd.Series) -> dict[str, float]:
    v = values.dropna().to_numpy(dtype=float)
    if v.size == 0:
        return {"median": math.nan, "mean": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "median": float(np.median(v)),
        "mean": float(np.mean(v)),
        "min": float(np.min(v)),
        "max": float(np.max(v)),
        "n": int(v.size),
    }


def per_checkpoint(df: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """Mean of ``metric`` over the cells of each checkpoint × ``by`` (applicable cells only)."""
    sub = _with_lattice(df)
    sub = sub[(sub["metric"] == metric) & (sub["status"] == "ok")]
    keys = ["checkpoint", "group", *by]
    return sub.groupby(keys, sort=False, dropna=False)["value"].mean().reset_index()


def over_checkpoints(pc: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Median / mean / min / max / n over checkpoints of a per-checkpoint table."""
    rows = []
    for key, part in pc.groupby(["group", *by], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(["group", *by], key, strict=True)), **_agg(part["value"])})
    return pd.DataFrame(rows)


# -- figures ---------------------------------------------------------------------------------------
def loss_vs_size(df: pd.DataFrame, task: str) -> list[Figure]:
    """Test loss vs lattice size, one line per group (all points and worm counts averaged)."""
    plt = _plt()
    lattices = _lattice_order(df)
    pc = per_checkpoint(df, "loss", ["lattice", "nt", "nx"])
    if pc.empty:
        return []
    agg = over_checkpoints(pc, ["lattice", "nt", "nx"])
    fig, ax = plt.subplots(figsize=(7.5, 4.4), layout="constrained")
    xs = {lat: i for i, lat in enumerate(lattices)}
    colors = _group_colors(agg["group"])
    for group, part in agg.groupby("group", sort=False):
        x = [xs[str(lat)] for lat in part["lattice"]]
        order = np.argsort(x)
        x = np.asarray(x)[order]
        med = part["median"].to_numpy()[order]
        ax.plot(
            x, med, marker="o", color=colors[group], label=f"{group} (n={int(part['n'].max())})"
        )
        ax.fill_between(
            x,
            part["min"].to_numpy()[order],
            part["max"].to_numpy()[order],
            alpha=0.2,
            color=colors[group],
        )
    ax.set_xticks(range(len(lattices)), lattices)
    ax.set_yscale("log")
    ax.set_xlabel(
        "test lattice Nt×Nx"
        if all(lat.count("x") == 1 for lat in lattices)
        else "test lattice (time first)"
    )
    ax.set_ylabel("test loss (median over checkpoints)")
    ax.set_title(f"{task}: test loss vs lattice size")
    ax.legend(fontsize=7)
    return [Figure(f"loss_vs_size_{task}", fig, agg, "test loss vs lattice size")]


def _maps(
    df: pd.DataFrame, task: str, metric: str, *, log: bool, label: str, stem: str
) -> list[Figure]:
    """Heat maps of ``metric`` over the theory's two map parameters (η vertically, μ horizontally),
    one panel per lattice size, one figure per group."""
    plt = _plt()
    from matplotlib.colors import LogNorm, Normalize

    theory = get_theory()
    row_key, col_key = theory.map_parameters
    lattices = _lattice_order(df)
    etas = sorted(df[row_key].unique())
    mus = sorted(df[col_key].unique())
    if len(etas) * len(mus) < 2:
        return []
    pc = per_checkpoint(df, metric, [*_LATTICE, row_key, col_key])
    if pc.empty:
        return []
    agg = over_checkpoints(pc, [*_LATTICE, row_key, col_key])
    out = []
    finite = agg["median"].replace([np.inf, -np.inf], np.nan).dropna()
    if log:
        pos = finite[finite > 0]
        norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if len(pos) else None
        if norm is not None and norm.vmin == norm.vmax:
            norm = LogNorm(vmin=norm.vmin / 2, vmax=norm.vmax * 2)
    else:
        norm = Normalize(vmin=min(0.5, float(finite.min())) if len(finite) else 0.0, vmax=1.0)
    for group in agg["group"].unique():
        part = agg[agg["group"] == group]
        fig, axes = plt.subplots(
            1,
            len(lattices),
            figsize=(2.9 * len(lattices) + 1.2, 3.0),
            squeeze=False,
            layout="constrained",
        )
        im = None
        for ax, lat in zip(axes[0], lattices, strict=True):
            grid = np.full((len(etas), len(mus)), np.nan)
            cell = part[part["lattice"] == lat]
            for _, row in cell.iterrows():
                grid[etas.index(row[row_key]), mus.index(row[col_key])] = row["median"]
            if np.all(np.isnan(grid)):
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                shown = np.where(grid > 0, grid, np.nan) if log else grid
                im = ax.imshow(shown, origin="lower", aspect="auto", norm=norm, cmap="viridis")
                for i in range(len(etas)):
                    for j in range(len(mus)):
                        if np.isfinite(grid[i, j]):
                            ax.text(
                                j,
                                i,
                                f"{grid[i, j]:.2g}",
                                ha="center",
                                va="center",
                                fontsize=7,
                                # dark text on the bright end of viridis, light text elsewhere
                                color="k" if norm is not None and norm(grid[i, j]) > 0.6 else "w",
                            )
                ax.set_xticks(range(len(mus)), [f"{m:g}" for m in mus])
                ax.set_yticks(range(len(etas)), [f"{e:g}" for e in etas])
                ax.set_xlabel(theory.parameter(col_key).symbol)
            ax.set_title(lat, fontsize=9)
        axes[0][0].set_ylabel(theory.parameter(row_key).symbol)
        if im is not None:
            fig.colorbar(im, ax=list(axes[0]), label=label)
        fig.suptitle(f"{task}: {label} — {group}", fontsize=10)
        out.append(Figure(f"{stem}_{_slug(group)}", fig, part.reset_index(drop=True), label))
    return out


def loss_maps(df: pd.DataFrame, task: str) -> list[Figure]:
    """Test-loss heat maps over (η, μ) per lattice size (worm counts averaged).

    Drawn when the grid has several values of the vertical map parameter (η): a grid that only
    scans μ at one η is shown by :func:`loss_vs_scan` instead.
    """
    if df[get_theory().map_parameters[0]].nunique() < 2:
        return []
    return _maps(df, task, "loss", log=True, label="test loss", stem=f"loss_map_{task}")


def accuracy_maps(df: pd.DataFrame, task: str) -> list[Figure]:
    """Detection accuracy heat maps over (η, μ) per lattice size (worm counts averaged)."""
    return _maps(df, task, "acc", log=False, label="accuracy", stem=f"accuracy_map_{task}")


def count_pred_vs_true(
    df: pd.DataFrame, task: str, *, title: str = "predicted vs true count"
) -> list[Figure]:
    """Predicted vs true count per lattice size, one line per physics point, one figure per group.

    Uses the metrics ``pred_mean`` and ``pred_std`` of cells indexed by their worm count.
    """
    plt = _plt()
    theory = get_theory()
    params = list(theory.parameter_names)
    lattices = _lattice_order(df)
    mean = per_checkpoint(df, "pred_mean", [*_LATTICE, *params, "worms"])
    spread = per_checkpoint(df, "pred_std", [*_LATTICE, *params, "worms"])
    if mean.empty:
        return []
    keys = ["group", *_LATTICE, *params, "worms"]
    agg = over_checkpoints(mean, keys[1:])
    agg = agg.merge(
        spread.groupby(keys, sort=False, dropna=False)["value"]
        .mean()
        .rename("pred_std")
        .reset_index(),
        on=keys,
    )
    out = []
    for group in agg["group"].unique():
        part = agg[agg["group"] == group]
        fig, axes = plt.subplots(
            1,
            len(lattices),
            figsize=(3.0 * len(lattices) + 2.0, 3.2),
            squeeze=False,
            sharey=True,
            layout="constrained",
        )
        top = float(part["worms"].max())
        for ax, lat in zip(axes[0], lattices, strict=True):
            cell = part[part["lattice"] == lat]
            ax.plot([0, top], [0, top], color="k", lw=0.8, ls="--")
            if cell.empty:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
            for values, pts in cell.groupby(params, sort=True):
                point = dict(zip(params, values, strict=True))
                label = ", ".join(
                    f"{theory.parameter(n).symbol}={point[n]:g}" for n in theory.map_parameters
                )
                pts = pts.sort_values("worms")
                ax.errorbar(
                    pts["worms"],
                    pts["median"],
                    yerr=pts["pred_std"],
                    marker=".",
                    capsize=2,
                    lw=1,
                    label=label,
                )
            ax.set_title(lat, fontsize=9)
            ax.set_xlabel("true count M")
        axes[0][0].set_ylabel("predicted count (median; bars: spread)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        if not handles:
            for ax in axes[0]:
                handles, labels = ax.get_legend_handles_labels()
                if handles:
                    break
        if handles:
            fig.legend(handles, labels, fontsize=7, loc="outside right center")
        fig.suptitle(f"{task}: {title} — {group}", fontsize=10)
        out.append(
            Figure(
                f"count_pred_vs_true_{_slug(group)}",
                fig,
                part.reset_index(drop=True),
                title,
            )
        )
    return out


def prediction_vs_scan(
    df: pd.DataFrame, *, targets: Sequence[str], title: str, stem: str
) -> list[Figure]:
    """Network prediction vs Monte Carlo of each target along the theory's scan parameter (μ).

    Uses the metrics ``pred_<target>`` and ``mc_<target>`` (with its standard error); one row of
    panels per target, one column per lattice size.
    """
    plt = _plt()
    theory = get_theory()
    params = list(theory.parameter_names)
    scan = theory.scan_parameter
    lattices = _lattice_order(df)
    df = _with_lattice(df)
    rows = []
    for target in targets:
        pred = per_checkpoint(df, f"pred_{target}", [*_LATTICE, *params])
        if not pred.empty:
            agg = over_checkpoints(pred, [*_LATTICE, *params])
            agg.insert(1, "target", target)
            agg.insert(2, "source", "network")
            rows.append(agg)
        mc = df[(df["metric"] == f"mc_{target}")]
        mc = mc.drop_duplicates(["lattice", *params])
        if not mc.empty:
            rows.append(
                pd.DataFrame(
                    {
                        "group": "Monte Carlo",
                        "target": target,
                        "source": "monte_carlo",
                        "nt": mc["nt"],
                        "nx": mc["nx"],
                        "lattice": mc["lattice"],
                        **{p: mc[p] for p in params},
                        "median": mc["value"],
                        "mean": mc["value"],
                        "min": mc["value"] - mc["stderr"],
                        "max": mc["value"] + mc["stderr"],
                        "n": mc["n_configs"],
                    }
                )
            )
    if not rows:
        return []
    data = pd.concat(rows, ignore_index=True)
    if len(data[scan].unique()) < 2:
        return []
    fig, axes = plt.subplots(
        len(targets),
        len(lattices),
        figsize=(3.0 * len(lattices) + 3.0, 2.8 * len(targets)),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    colors = _group_colors(g for g in data["group"] if g != "Monte Carlo")
    for j, lat in enumerate(lattices):
        for i, target in enumerate(targets):
            ax = axes[i][j]
            sel = data[(data["lattice"] == lat) & (data["target"] == target)]
            for group, part in sel.groupby("group", sort=False):
                part = part.sort_values(scan)
                if group == "Monte Carlo":
                    ax.errorbar(
                        part[scan],
                        part["median"],
                        yerr=(part["max"] - part["min"]) / 2,
                        fmt="o",
                        ms=3,
                        color="k",
                        capsize=2,
                        label="Monte Carlo",
                        zorder=3,
                    )
                else:
                    c = colors[group]
                    ax.plot(part[scan], part["median"], lw=1.2, label=group, color=c)
                    ax.fill_between(part[scan], part["min"], part["max"], alpha=0.2, color=c)
            if i == 0:
                ax.set_title(lat, fontsize=9)
            if i == len(targets) - 1:
                ax.set_xlabel(theory.parameter(scan).symbol)
            if j == 0:
                ax.set_ylabel(_symbol(target))
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="outside right center")
    fig.suptitle(title, fontsize=10)
    return [Figure(stem, fig, data, "prediction vs Monte Carlo")]


def _symbol(name: str) -> str:
    """The theory's symbol of an observable (``|φ|²``), else the name itself."""
    try:
        return get_theory().observable(name).symbol
    except KeyError:
        return name


def loss_vs_scan(df: pd.DataFrame, task: str) -> list[Figure]:
    """Test loss along the theory's scan parameter (μ) per lattice size, one line per group."""
    plt = _plt()
    theory = get_theory()
    scan = theory.scan_parameter
    lattices = _lattice_order(df)
    pc = per_checkpoint(df, "loss", [*_LATTICE, scan])
    if pc.empty or len(pc[scan].unique()) < 2:
        return []
    agg = over_checkpoints(pc, [*_LATTICE, scan])
    fig, axes = plt.subplots(
        1,
        len(lattices),
        figsize=(3.0 * len(lattices) + 3.0, 3.4),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    colors = _group_colors(agg["group"])
    symbol = theory.parameter(scan).symbol
    for ax, lat in zip(axes[0], lattices, strict=True):
        sel = agg[agg["lattice"] == lat]
        for group, part in sel.groupby("group", sort=False):
            part = part.sort_values(scan)
            c = colors[group]
            ax.plot(part[scan], part["median"], marker=".", lw=1, label=group, color=c)
            ax.fill_between(part[scan], part["min"], part["max"], alpha=0.2, color=c)
        ax.set_yscale("log")
        ax.set_title(lat, fontsize=9)
        ax.set_xlabel(symbol)
    axes[0][0].set_ylabel("test loss")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="outside right center")
    fig.suptitle(f"{task}: test loss vs {symbol}", fontsize=10)
    return [Figure(f"loss_vs_{scan}_{task}", fig, agg, f"test loss vs {symbol}")]


def loss_vs_ntrain(df: pd.DataFrame, checkpoints: pd.DataFrame, task: str) -> list[Figure]:
    """Test loss on the training lattice vs number of training samples, one line per model (the
    preset and the run's other distinguishing overrides, :func:`model_label`)."""
    plt = _plt()
    sub = df[(df["metric"] == "loss") & (df["status"] == "ok")]
    sub = sub[_on_training_lattice(sub)]
    if sub.empty:
        return []
    sub = sub.assign(
        model=[
            model_label(p, v, ["data.n_train"])
            for p, v in zip(sub["preset"], sub["variant"], strict=True)
        ]
    )
    pc = sub.groupby(["checkpoint", "model", "n_train"], dropna=False, sort=False)["value"]
    pc = pc.mean().reset_index()
    if pc["n_train"].nunique() < 2:
        return []
    rows = []
    for (model, n_train), part in pc.groupby(["model", "n_train"], sort=False):
        rows.append({"model": model, "n_train": int(n_train), **_agg(part["value"])})
    agg = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6.0, 4.2), layout="constrained")
    for model, part in agg.groupby("model", sort=False):
        part = part.sort_values("n_train")
        line = ax.plot(part["n_train"], part["median"], marker="o", label=f"{model} median")[0]
        ax.plot(
            part["n_train"], part["mean"], ls="--", color=line.get_color(), label=f"{model} mean"
        )
        ax.fill_between(
            part["n_train"], part["min"], part["max"], alpha=0.15, color=line.get_color()
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = sorted(int(n) for n in agg["n_train"].unique())
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training samples per μ value (n_train)")
    ax.set_ylabel("test loss on the training lattice")
    ax.set_title(f"{task}: test loss vs number of training samples")
    ax.legend(fontsize=7)
    return [Figure(f"loss_vs_ntrain_{task}", fig, agg, "test loss vs number of training samples")]


def make_figures(df: pd.DataFrame, checkpoints: pd.DataFrame) -> list[Figure]:
    """All figures that apply to the tasks in the tidy table ``df``."""
    out: list[Figure] = []
    # eq, st, fl first-to-last (stable): every figure gives a model the same colour
    order = df["family"].map({"eq": 0, "st": 1, "fl": 2}).fillna(3)
    df = df.assign(_order=order).sort_values(["_order", "preset", "n_train"], kind="stable")
    df = df.drop(columns="_order")
    from scalar_ml.tasks import get_task

    for task in df["task"].unique():
        part = df[df["task"] == task]
        for fn in get_task(str(task)).figures():
            out.extend(fn(part, str(task)))
        out.extend(loss_vs_ntrain(part, checkpoints, str(task)))
    return out


def write_figures(
    df: pd.DataFrame,
    checkpoints: pd.DataFrame,
    plot_dir: Path,
    *,
    dpi: int = 110,
    figures: Sequence[Figure] | None = None,
) -> list[Figure]:
    """:func:`make_figures` (or the given ``figures``), each saved as ``plot_dir/<stem>.png`` with
    ``<stem>.csv`` beside it.

    The figures stay open (for the loggers); close them with ``plt.close(fig.figure)``.
    """
    plot_dir.mkdir(parents=True, exist_ok=True)
    figures = make_figures(df, checkpoints) if figures is None else list(figures)
    for fig in figures:
        fig.png = plot_dir / f"{fig.stem}.png"
        fig.figure.savefig(fig.png, dpi=dpi)
        fig.data.to_csv(plot_dir / f"{fig.stem}.csv", index=False)
    return figures
