"""Grids, cell data, metrics and checkpoint discovery, piece by piece (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scalar_ml.evaluation.grid import Grid, list_grids, load_grid, parse_lattice
from scalar_ml.physics.params import Lattice, PhysicsParams


# -- grids ---------------------------------------------------------------------------------------------
def test_default_grids_match_the_seed() -> None:
    counting = load_grid("counting")
    assert len(counting.cells()) == 396  # 9 (eta, mu) x 4 sizes x 0..10 worms (SPEC §5)
    assert {(p.eta, p.mu) for p in counting.points} == {
        (e, m) for e in (4.01, 4.04, 4.25) for m in (1.0, 1.25, 1.5)
    }
    assert [(x.nt, x.nx) for x in counting.lattices] == [(8, 8), (16, 16), (32, 32), (64, 64)]
    assert counting.worms == tuple(range(11)) and {p.lam for p in counting.points} == {1.0}
    detection = load_grid("detection")
    assert len(detection.blocks()) == 36 and min(detection.worms) >= 1
    obs = load_grid("observables")
    assert {(x.nt, x.nx) for x in obs.lattices} >= {(60, 4), (100, 5), (125, 8), (200, 10)}
    mus = [p.mu for p in obs.points]
    assert min(mus) == 0.91 and max(mus) == 1.05 and len(mus) == 29  # steps of 0.005
    for name in list_grids():
        if name != "auto":
            grid = load_grid(name)
            assert grid.name == name and grid.seed != 0  # never the training data seed


def test_grid_validation_errors() -> None:
    base = {"task": "counting", "lattices": ["8x8"], "eta": [4.01], "lam": [1.0], "mu": [1.0],
            "worms": [0], "n_configs": 4, "seed": 1}  # fmt: skip
    Grid.from_config(base)
    cases = [
        ({"lattices": ["8by8"]}, "look like"),
        ({"task": "regression"}, "grid.task"),
        ({"worms": [0, 0]}, "repeat"),
        ({"n_configs": 0}, "n_configs"),
        ({"seed": -1}, "seed"),
        ({"colour": "red"}, "unknown grid key"),
        ({"lam": [0.0], "mu": [1.0], "eta": [4.01]}, "free theory"),
        ({"worms": [33]}, "distinct end points"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            Grid.from_config({**base, **change})
    with pytest.raises(ValueError, match=r"grid.worms\[0\] must be an integer >= 1"):
        Grid.from_config({**base, "task": "detection", "worms": [0, 1]})
    with pytest.raises(ValueError, match="no worms"):
        Grid.from_config({**base, "task": "observables", "worms": [1]})
    with pytest.raises(ValueError, match="unknown grid"):
        load_grid("nope")
    assert parse_lattice("60x4") == Lattice(60, 4) == parse_lattice({"nt": 60, "nx": 4})


def test_auto_grid_takes_the_task_default_with_overrides() -> None:
    from scalar_ml.evaluation.runner import resolve_grids

    auto = {"task": "auto", "n_configs": 16, "lattices": ["8x8"], "points": None, "worms": None}
    grids = resolve_grids(auto, ["counting", "detection"])
    assert grids["counting"].n_configs == 16 and len(grids["counting"].lattices) == 1
    assert len(grids["counting"].points) == 9 and grids["counting"].worms == tuple(range(11))
    assert grids["detection"].worms == load_grid("detection").worms
    with pytest.raises(ValueError, match="is a counting grid"):
        resolve_grids(
            {"task": "counting", "lattices": ["8x8"], "eta": [4.01], "lam": [1.0], "mu": [1.0],
             "worms": [0], "n_configs": 4, "seed": 1},
            ["observables"],
        )  # fmt: skip


# -- cell data ---------------------------------------------------------------------------------------
class _Ens:
    """A stand-in ensemble of closed (empty) configurations."""

    def __init__(self, n: int, nt: int, nx: int) -> None:
        self.configs = np.zeros((n, 4, nt, nx), dtype=np.int32)
        self.n = np.zeros(n)
        self.phi2 = np.zeros(n)
        self.phi4 = np.zeros(n)


def test_cell_data_labels_and_determinism() -> None:
    from scalar_ml.data.violations import violation_count
    from scalar_ml.evaluation.datasets import build_cell_data, check_disjoint_seeds

    lat, p = Lattice(6, 6), PhysicsParams(4.01, 1.0, 1.5)
    ens = _Ens(10, 6, 6)
    a = build_cell_data("counting", ens, p, lat, 3, seed=7)
    assert a.targets.shape == (10, 1) and (a.targets == 3).all()
    assert (violation_count(a.inputs.astype(np.int64)) == 3).all()
    b = build_cell_data("counting", ens, p, lat, 3, seed=7)
    assert np.array_equal(a.inputs, b.inputs)  # same cell, same data
    c = build_cell_data("counting", ens, p, lat, 3, seed=8)
    assert not np.array_equal(a.inputs, c.inputs)
    other_point = build_cell_data("counting", ens, PhysicsParams(4.25, 1.0, 1.5), lat, 3, seed=7)
    assert not np.array_equal(a.inputs, other_point.inputs)
    det = build_cell_data("detection", ens, p, lat, 2, seed=7)
    assert det.targets.sum() == 5 and set(det.worms.tolist()) == {0, 2}
    assert np.array_equal(det.targets[:, 0] > 0, violation_count(det.inputs.astype(np.int64)) > 0)
    with pytest.raises(ValueError, match=r"worms\[0\] must be an integer >= 1"):
        build_cell_data("detection", ens, p, lat, 0, seed=7)
    with pytest.raises(ValueError, match="data seed"):
        check_disjoint_seeds(0, 0, "run")
    check_disjoint_seeds(1000, 0, "run")


# -- metrics ----------------------------------------------------------------------------------------
def test_cell_metrics_match_torch() -> None:
    from scalar_ml.evaluation.metrics import cell_metrics
    from scalar_ml.tasks import get_task

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (50, 1), generator=g).double()
    z = torch.randn(50, 1, generator=g, dtype=torch.float64) * 3
    p = torch.sigmoid(z)
    m = {k: (v, s) for k, v, s in cell_metrics("detection", p.numpy(), z.numpy(), y.numpy())}
    assert tuple(m) == get_task("detection").metric_names
    assert m["loss"][0] == pytest.approx(F.binary_cross_entropy_with_logits(z, y).item(), rel=1e-12)
    acc = ((p >= 0.5) == (y >= 0.5)).double()
    assert m["acc"][0] == pytest.approx(acc.mean().item())
    assert m["acc"][1] == pytest.approx(math.sqrt(m["acc"][0] * (1 - m["acc"][0]) / 50))
    assert m["tpr"][0] == pytest.approx(acc[y == 1].mean().item())
    assert m["tnr"][0] == pytest.approx(acc[y == 0].mean().item())
    # a ratio's standard error (linearised) ~ the binomial one of its subset, times sqrt(N/(N-1))
    n_pos = int((y == 1).sum())
    tpr = m["tpr"][0]
    assert m["tpr"][1] == pytest.approx(math.sqrt(tpr * (1 - tpr) / n_pos * 50 / 49), rel=1e-9)

    t = torch.rand(40, 2, generator=g, dtype=torch.float64)
    q = t + 0.1 * torch.randn(40, 2, generator=g, dtype=torch.float64)
    o = {k: (v, s) for k, v, s in cell_metrics("observables", q.numpy(), q.numpy(), t.numpy())}
    assert o["loss"][0] == pytest.approx(F.mse_loss(q, t).item(), rel=1e-12)
    assert o["mse_n"][0] == pytest.approx(F.mse_loss(q[:, 0], t[:, 0]).item(), rel=1e-12)
    per = ((q - t) ** 2).mean(dim=1)
    assert o["loss"][1] == pytest.approx((per.std() / math.sqrt(40)).item(), rel=1e-12)
    assert o["mc_phi2"][0] == pytest.approx(t[:, 1].mean().item())
    with pytest.raises(ValueError, match="shape"):
        list(cell_metrics("counting", q.numpy(), q.numpy(), t[:, :1].numpy()))


# -- checkpoints ---------------------------------------------------------------------------------------
def test_find_checkpoints_layouts(tmp_path: Path) -> None:
    from scalar_ml.evaluation.checkpoints import find_checkpoints

    for job in ("0", "1"):
        d = tmp_path / "multi" / job / "checkpoints"
        d.mkdir(parents=True)
        (d / "last.ckpt").write_bytes(b"x")
        (d / "epoch_003.ckpt").write_bytes(b"x")
    (tmp_path / "multi" / "0" / "metrics.json").write_text(
        '{"best_checkpoint": "/moved/elsewhere/epoch_003.ckpt"}'
    )
    multi = tmp_path / "multi"
    best = find_checkpoints(str(multi))
    assert [p.relative_to(multi).as_posix() for p in best] == [
        "0/checkpoints/epoch_003.ckpt",
        "1/checkpoints/epoch_003.ckpt",
    ]
    last = find_checkpoints(str(multi / "1"), which="last")
    assert [p.name for p in last] == ["last.ckpt"]
    globbed = find_checkpoints(f"{multi}/*/checkpoints/*.ckpt")
    assert len(globbed) == 4
    assert find_checkpoints([str(best[0]), str(best[0])]) == [best[0]]  # deduplicated
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        find_checkpoints(str(_empty(tmp_path)))
    with pytest.raises(ValueError, match="best, last"):
        find_checkpoints(str(multi), which="worst")
    with pytest.raises(ValueError, match="required"):
        find_checkpoints("")


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty_run"
    d.mkdir()
    return d


def test_variants_drop_seed_and_shared_overrides() -> None:
    from scalar_ml.evaluation.checkpoints import CheckpointRecord, assign_labels

    def rec(path: str, overrides: list[str]) -> CheckpointRecord:
        return CheckpointRecord(Path(path), None, "observables", "observables/eq", "eq", {}, 1, 0,
                                overrides=overrides)  # fmt: skip

    records = [
        rec("/r/0/checkpoints/a.ckpt", ["experiment=x", "model=eq", "data.n_train=20", "seed=0"]),
        rec("/r/1/checkpoints/a.ckpt", ["experiment=x", "model=eq", "data.n_train=20", "seed=1"]),
        rec("/r/2/checkpoints/a.ckpt", ["experiment=x", "model=eq", "data.n_train=80", "seed=0"]),
    ]
    assign_labels(records)
    assert [r.variant for r in records] == ["data.n_train=20", "data.n_train=20", "data.n_train=80"]
    assert records[0].group == "observables/eq data.n_train=20"
    assert [r.label for r in records] == [
        "0/checkpoints/a.ckpt",
        "1/checkpoints/a.ckpt",
        "2/checkpoints/a.ckpt",
    ]


def test_observables_and_detection_cells_through_predict() -> None:
    """Observable targets from measure(); detection losses on the logits, as in training."""
    from scalar_ml.evaluation.datasets import build_cell_data
    from scalar_ml.evaluation.metrics import cell_metrics, predict
    from scalar_ml.physics.observables import measure
    from scalar_ml.training.module import LatticeModule

    lat, p = Lattice(8, 4), PhysicsParams(4.01, 1.0, 1.0)
    ens = _Ens(6, 8, 4)
    ens.phi2 = measure(ens.configs, p)["phi2"]
    obs = build_cell_data("observables", ens, p, lat, 0, seed=3)
    assert obs.targets.shape == (6, 2) and np.allclose(obs.targets[:, 1], 0.208700, atol=1e-6)
    ens.phi2 = ens.phi2 + 0.5  # a cache entry that disagrees with the configurations
    with pytest.raises(RuntimeError, match="inconsistent"):
        build_cell_data("observables", ens, p, lat, 0, seed=3)

    torch.manual_seed(0)
    module = LatticeModule(task="detection", preset="detection/eq").eval()
    det = build_cell_data("detection", _Ens(8, 8, 8), p, Lattice(8, 8), 1, seed=3)
    pred, raw = predict(module, det.inputs, batch_size=3)
    x = torch.from_numpy(det.inputs)
    with torch.no_grad():
        assert np.allclose(pred, module(x).numpy(), atol=1e-6)
        logits = module.net.logits(x)
    assert np.allclose(raw, logits.numpy(), atol=1e-6)
    loss = dict((k, v) for k, v, _ in cell_metrics("detection", pred, raw, det.targets))
    expected = F.binary_cross_entropy_with_logits(
        logits.double(), torch.from_numpy(det.targets).double()
    )
    assert loss["loss"] == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        predict(module, det.inputs, batch_size=0)
