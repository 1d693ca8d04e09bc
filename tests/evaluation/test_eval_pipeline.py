"""evaluate(cfg) end to end on tiny checkpoints trained in the session: CSV rows, PNGs, n/a rows, recomputation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from app_helpers import subprocess_env
from evaluation_helpers import SHORT_CHAINS, TINY_GRID, TINY_SAMPLER

from scalar_ml.paths import PROJECT_ROOT

pytestmark = pytest.mark.filterwarnings(SHORT_CHAINS)

COUNTING_METRICS = ("loss", "acc", "pred_mean", "pred_std")


@pytest.fixture(scope="module")
def evaluated(counting_runs, eval_cache, tmp_path_factory):
    """One evaluation of both tiny checkpoints (eq and fl) over the tiny 2-size x 2-point grid."""
    from app_helpers import compose_app

    from scalar_ml.evaluation.runner import evaluate

    run_dir = tmp_path_factory.mktemp("evaluated")
    parent = counting_runs["eq"].parent  # the "multirun" directory holding both runs
    cfg = compose_app(
        "evaluate",
        [*TINY_SAMPLER, "progress=false", f"ckpt_path={parent}", *TINY_GRID, "logger=tensorboard"],
        run_dir,
        eval_cache,
    )
    result = evaluate(cfg)
    return run_dir, result


def test_csv_has_one_row_per_checkpoint_cell_metric(evaluated, counting_runs) -> None:
    run_dir, result = evaluated
    df = pd.read_csv(run_dir / "evaluation.csv")
    from scalar_ml.evaluation.runner import COLUMNS

    assert tuple(df.columns) == COLUMNS
    # 2 checkpoints x 2 sizes x 2 points x 3 worm counts x 4 metrics
    assert len(df) == 2 * 2 * 2 * 3 * len(COUNTING_METRICS) == result["n_rows"]
    assert set(df["metric"]) == set(COUNTING_METRICS)
    assert set(zip(df["nt"], df["nx"], strict=True)) == {(8, 8), (16, 16)}
    assert set(zip(df["eta"], df["mu"], strict=True)) == {(4.25, 1.0), (4.01, 1.5)}
    assert set(df["worms"]) == {0, 1, 5}
    assert set(df["family"]) == {"eq", "fl"}
    assert set(df["preset"]) == {"counting/eq_1", "counting/fl_1"}
    assert set(df["seed"]) == {0} and set(df["n_train"]) == {32}
    assert set(df["task"]) == {"counting"}
    ok = df[df["status"] == "ok"]
    assert (ok["n_configs"] == 8).all()
    assert np.isfinite(ok["value"]).all()
    loss = ok[ok["metric"] == "loss"]
    assert np.isfinite(loss["stderr"]).all() and (loss["stderr"] >= 0).all()
    # the checkpoints evaluated are the best ones of the two runs
    for family, run in counting_runs.items():
        assert any(str(run) in c for c in df[df["family"] == family]["checkpoint"])


def test_fl_checkpoint_gives_not_applicable_rows_on_other_sizes(evaluated) -> None:
    run_dir, _ = evaluated
    df = pd.read_csv(run_dir / "evaluation.csv")
    fl = df[df["family"] == "fl"]
    other = fl[fl["nt"] == 16]
    assert len(other) == 2 * 3 * len(COUNTING_METRICS)
    assert (other["status"] == "not applicable").all()
    assert other["value"].isna().all() and (other["n_configs"] == 0).all()
    assert other["note"].str.contains("8×8").all()
    assert (fl[fl["nt"] == 8]["status"] == "ok").all()
    assert (df[df["family"] == "eq"]["status"] == "ok").all()
    # the summary marks the fl "all sizes" loss as missing, as in the seed's table
    summary = pd.read_csv(run_dir / "summary.csv").set_index("preset")
    assert np.isnan(summary.loc["counting/fl_1", "test_loss_all_mean"])
    assert np.isfinite(summary.loc["counting/eq_1", "test_loss_all_mean"])
    assert "| counting/fl_1 | 1 |" in (run_dir / "summary.md").read_text()


def test_pngs_and_the_data_behind_them(evaluated) -> None:
    run_dir, result = evaluated
    plots = run_dir / "plots"
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert "loss_vs_size_counting.png" in pngs
    assert any(p.startswith("count_pred_vs_true_counting_eq_1") for p in pngs)
    assert any(p.startswith("loss_map_counting_counting_eq_1") for p in pngs)
    for png in plots.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert png.with_suffix(".csv").is_file()
    assert sorted(Path(p).name for p in result["figures"]) == pngs
    # the plotted loss per size is the mean over cells of the tidy table
    df = pd.read_csv(run_dir / "evaluation.csv")
    plotted = pd.read_csv(plots / "loss_vs_size_counting.csv")
    row = plotted[(plotted["group"] == "counting/eq_1") & (plotted["lattice"] == "16x16")].iloc[0]
    cells = df[(df["family"] == "eq") & (df["nt"] == 16) & (df["metric"] == "loss")]
    assert row["median"] == pytest.approx(cells["value"].mean(), rel=1e-12)
    for name in (
        "checkpoints.csv",
        "summary.csv",
        "loss_by_size.csv",
        "grids.yaml",
        "config_resolved.yaml",
    ):
        assert (run_dir / name).is_file()


def test_metrics_equal_a_direct_recomputation(evaluated, eval_cache) -> None:
    """One cell recomputed from scratch: cache -> worms -> labels from div k -> network -> torch losses."""
    from scalar_ml.data.cache import load_ensemble
    from scalar_ml.data.violations import insert_open_worms, violation_count
    from scalar_ml.evaluation.checkpoints import load_checkpoint
    from scalar_ml.evaluation.datasets import cell_rng
    from scalar_ml.physics.params import Lattice, PhysicsParams

    run_dir, _ = evaluated
    df = pd.read_csv(run_dir / "evaluation.csv")
    cell = df[(df["family"] == "eq") & (df["nt"] == 16) & (df["eta"] == 4.01) & (df["worms"] == 5)]
    values = dict(zip(cell["metric"], cell["value"], strict=True))
    errors = dict(zip(cell["metric"], cell["stderr"], strict=True))

    params, lattice = PhysicsParams(4.01, 1.0, 1.5), Lattice(16, 16)
    ens = load_ensemble(params, lattice, 8, 1000, cache_dir=eval_cache,
                        n_chains=2, n_therm=20, sweeps_between=2)  # fmt: skip
    configs = insert_open_worms(ens.configs, 5, cell_rng(1000, lattice, params, 5))
    target = torch.from_numpy(violation_count(configs).astype(np.float32))[:, None]
    assert (target == 5).all()
    _, module = load_checkpoint(Path(cell["checkpoint"].iloc[0]))
    with torch.no_grad():
        pred = module(torch.from_numpy(configs.astype(np.float32)))
    sq = (pred - target).pow(2)[:, 0].double()
    assert values["loss"] == pytest.approx(
        torch.nn.functional.mse_loss(pred, target).item(), rel=1e-5
    )
    assert errors["loss"] == pytest.approx((sq.std() / np.sqrt(8)).item(), rel=1e-5)
    assert values["acc"] == pytest.approx((torch.round(pred) == target).float().mean().item())
    assert values["pred_mean"] == pytest.approx(pred.mean().item(), rel=1e-5)
    assert values["pred_std"] == pytest.approx(pred.std().item(), rel=1e-4)


def test_refuses_to_overwrite_and_bad_inputs(
    evaluated, make_eval_cfg, counting_runs, tmp_path
) -> None:
    from scalar_ml.evaluation.runner import evaluate

    run_dir, _ = evaluated
    eq = counting_runs["eq"]
    # every refusal is a UserError (a ValueError), printed as one line by evaluate.py
    with pytest.raises(ValueError, match=r"evaluation\.csv"):
        evaluate(make_eval_cfg([f"ckpt_path={eq}", *TINY_GRID], run_dir=run_dir))
    with pytest.raises(ValueError, match="does not exist"):
        evaluate(make_eval_cfg([f"ckpt_path={tmp_path / 'nope.ckpt'}", *TINY_GRID]))
    with pytest.raises(ValueError, match="matches nothing"):
        evaluate(make_eval_cfg([f"ckpt_path={tmp_path}/*/last.ckpt", *TINY_GRID]))
    with pytest.raises(ValueError, match="is a observables grid"):
        evaluate(make_eval_cfg([f"ckpt_path={eq}", "grid=observables_small"]))
    # the training data seed is 0: a grid with seed 0 would re-use the training chains
    with pytest.raises(ValueError, match="data seed"):
        evaluate(make_eval_cfg([f"ckpt_path={eq}", *TINY_GRID, "grid.seed=0"]))
    with pytest.raises(ValueError, match="distinct end points"):
        evaluate(
            make_eval_cfg([f"ckpt_path={eq}", *TINY_GRID, "grid.lattices=[4x4]", "grid.worms=[9]"])
        )
    not_a_ckpt = tmp_path / "x.ckpt"
    not_a_ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        evaluate(make_eval_cfg([f"ckpt_path={not_a_ckpt}", *TINY_GRID]))
    # nothing was written by the refused runs
    assert not list(tmp_path.glob("eval*/evaluation.csv"))


def test_auto_grid_last_checkpoint_and_cli(counting_runs, eval_cache, tmp_path) -> None:
    """The CLI (a subprocess, as users run it): a glob of last.ckpt files, the default grid=auto."""
    out = tmp_path / "cli_eval"
    pattern = f"{counting_runs['eq'].parent}/*/checkpoints/last.ckpt"
    cmd = [
        sys.executable, "evaluate.py", f"ckpt_path={pattern}", "checkpoint=last",
        "grid.lattices=[8x8]", "grid.points=[{eta: 4.25, lam: 1.0, mu: 1.0}]", "grid.worms=[0,2]",
        "grid.n_configs=8", *TINY_SAMPLER, f"hydra.run.dir={out}", "plots=false",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=subprocess_env(eval_cache, tmp_path), timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(out / "evaluation.csv")
    assert set(df["checkpoint"].map(lambda p: Path(p).name)) == {"last.ckpt"}
    assert len(df) == 2 * 1 * 1 * 2 * len(COUNTING_METRICS)
    assert (df["status"] == "ok").all()  # both take 8x8
    assert not (out / "plots").exists()


def test_figures_are_logged_to_tensorboard(evaluated) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, result = evaluated
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    logged = set(acc.Tags()["images"])
    assert logged == {f"evaluation/{Path(p).stem}" for p in result["figures"]}


def test_results_page_from_an_evaluation(evaluated, tmp_path) -> None:
    """The results writer: tables recomputed from the CSVs, measured outcomes, copied figures."""
    from scalar_ml.evaluation.reproduce import ExperimentPlan, write_results

    run_dir, _ = evaluated
    plan = ExperimentPlan(
        name="counting_generalization", title="Task 3 (test)", seed_result="claim", task="counting",
        grid="counting_small", train_from=None, train_overrides=["seed=0"], evaluate_overrides=[],
        figures=["loss_vs_size_counting", "count_pred_vs_true_counting_eq_1"],
        train_dir=tmp_path / "train", eval_dir=run_dir, timings={"evaluate_s": 60.0},
    )  # fmt: skip
    page = write_results(
        [plan], scale="smoke", results=tmp_path / "results.md", figures_dir=tmp_path / "figs",
        total_s=60.0, command="python -m scalar_ml.evaluation.reproduce --scale smoke",
    )  # fmt: skip
    text = page.read_text()
    assert "## Task 3 (test)" in text and "*Seed:* claim" in text
    assert (run_dir / "summary.md").read_text().strip() in text  # same tables as the run wrote
    assert (
        "| counting_generalization | counting/eq_1" in text
        or "| counting_generalization | counting/fl_1" in text
    )
    assert "counting/fl_1: not applicable on 16x16" in text
    copied = sorted(p.name for p in (tmp_path / "figs" / plan.name).glob("*.png"))
    assert copied == ["count_pred_vs_true_counting_eq_1.png", "loss_vs_size_counting.png"]
    assert all(f"figs/{plan.name}/{name}" in text for name in copied)
    assert "train 1.0 min" not in text and "evaluate 1.0 min wall" in text
