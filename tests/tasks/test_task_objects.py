"""The Task objects: registry, labels recomputed and checked, one metric definition for training
and evaluation (checked against torchmetrics and by hand), heads, per-site targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import (
    binary_f1_score,
    binary_precision,
    binary_recall,
)

from scalar_ml.config import ConfigError
from scalar_ml.physics.observables import flux_divergence
from scalar_ml.physics.params import Lattice, PhysicsParams
from scalar_ml.tasks import ClosedSample, Metric, Outputs, all_tasks, get_task, task_names

P = PhysicsParams(4.01, 1.0, 1.5)


def _closed(n: int, nt: int = 8, nx: int = 8) -> ClosedSample:
    return ClosedSample(np.zeros((n, 4, nt, nx), dtype=np.int32), P, {})


def test_registry_lists_every_task_once_in_order() -> None:
    names = task_names()
    assert names[:4] == ("observables", "detection", "counting", "localisation")
    assert [t.name for t in all_tasks()] == list(names)
    assert get_task(get_task("counting")) is get_task("counting")
    with pytest.raises(ConfigError, match="unknown task 'nope'; tasks: observables"):
        get_task("nope")


@pytest.mark.parametrize("name", ["detection", "counting", "localisation"])
def test_labels_are_recomputed_and_a_wrong_intent_is_a_bug(name: str) -> None:
    task = get_task(name)
    rng = np.random.default_rng(0)
    counts = np.array([0, 1, 2, 5])
    x, y = task.make_examples(_closed(4), counts, rng)
    ends = np.abs(flux_divergence(x))
    assert np.array_equal(ends.sum(axis=(-2, -1)), 2 * counts)
    if task.per_site:
        assert y.shape == (4, 1, 8, 8) and np.array_equal(y[:, 0], ends)
    else:
        assert y.shape == (4, 1)
    with pytest.raises(RuntimeError, match="bug"):
        task.label(x, counts + 1)


@pytest.mark.parametrize("name", ["observables", "detection", "counting", "localisation"])
def test_worm_rules(name: str) -> None:
    task = get_task(name)
    lattices = [Lattice(4, 4)]
    if not task.inserts_worms:
        assert task.check_worms("w", [0], lattices) == (0,)
        with pytest.raises(ConfigError, match="takes no worms"):
            task.check_worms("w", [1], lattices)
        return
    with pytest.raises(ConfigError, match="at most 8 worms fit"):
        task.check_worms("w", [9], lattices)
    rng = np.random.default_rng(1)
    train = task.training_counts(rng, 100, [task.min_worms, 5])
    cell = task.cell_counts(rng, 100, 3)
    assert set(train.tolist()) <= {0, task.min_worms, 5} and set(cell.tolist()) <= {0, 3}
    assert (cell == 3).sum() >= 50


def _random_outputs(task_name: str, n: int = 40, seed: int = 0) -> Outputs:
    task = get_task(task_name)
    g = torch.Generator().manual_seed(seed)
    shape = (n, 1, 6, 5) if task.per_site else (n, task.n_outputs)
    target = (torch.rand(shape, generator=g, dtype=torch.float64) < 0.2).double()
    raw = 2 * torch.randn(shape, generator=g, dtype=torch.float64) + 2 * (target - 0.5)
    return Outputs(task.prediction(raw), raw, target, task.sample_loss(raw, target))


@pytest.mark.parametrize("name", ["observables", "detection", "counting", "localisation"])
def test_training_sums_and_evaluation_agree(name: str) -> None:
    """One definition: accumulating batch sums (training) gives the whole-cell value (evaluation)."""
    task = get_task(name)
    out = _random_outputs(name)
    for metric in task.evaluation_metrics():
        if metric.kind == "spread":
            continue
        value, _ = metric.evaluate(out)
        parts = [Outputs(*(t[sl] for t in out)) for sl in (slice(0, 13), slice(13, 40))]
        sums = [metric.sums(p) for p in parts]
        a, b = sum(s[0] for s in sums), sum(s[1] for s in sums)
        assert float(a / b) == pytest.approx(value, rel=1e-12), metric.name
    # the per-configuration losses average to the batch loss
    assert out.loss.mean().item() == pytest.approx(task.loss(out.raw, out.target).item(), rel=1e-12)


def test_localisation_metrics_equal_torchmetrics_and_the_count_is_half_the_map() -> None:
    task = get_task("localisation")
    out = _random_outputs("localisation", n=30, seed=3)
    m = {metric.name: metric.evaluate(out) for metric in task.evaluation_metrics()}
    p, t = out.pred.flatten(), out.target.flatten().long()
    assert m["f1"][0] == pytest.approx(binary_f1_score(p, t).item(), rel=1e-6)
    assert m["precision"][0] == pytest.approx(binary_precision(p, t).item(), rel=1e-6)
    assert m["recall"][0] == pytest.approx(binary_recall(p, t).item(), rel=1e-6)
    count = 0.5 * out.pred.sum(dim=(1, 2, 3))
    true = 0.5 * out.target.sum(dim=(1, 2, 3))
    assert m["pred_mean"][0] == pytest.approx(count.mean().item())
    assert m["count_mse"][0] == pytest.approx(((count - true) ** 2).mean().item())
    assert 0 < m["f1"][1] < 1  # a standard error by linearisation
    # negative control: a map that predicts nothing has no precision, recall 0
    empty = Outputs(torch.zeros_like(out.pred), out.raw, out.target, out.loss)
    f1 = {metric.name: metric.evaluate(empty)[0] for metric in task.evaluation_metrics()}
    assert f1["f1"] == 0 and f1["recall"] == 0 and math.isnan(f1["precision"])


def test_metric_kinds_and_standard_errors() -> None:
    out = Outputs(
        torch.tensor([[1.0], [2.0], [4.0]]),
        torch.zeros(3, 1),
        torch.zeros(3, 1),
        torch.zeros(3),
    )
    mean = Metric("m", "mean", lambda o: o.pred[:, 0])
    assert mean.evaluate(out) == pytest.approx((7 / 3, np.std([1, 2, 4], ddof=1) / math.sqrt(3)))
    spread = Metric("s", "spread", lambda o: o.pred[:, 0])
    value, se = spread.evaluate(out)
    assert value == pytest.approx(np.std([1, 2, 4], ddof=1)) and math.isnan(se)
    with pytest.raises(ValueError, match="unknown kind"):
        Metric("x", "median", lambda o: o.pred)


@pytest.mark.parametrize("name", ["observables", "detection", "counting", "localisation"])
def test_heads_match_the_presets(name: str) -> None:
    from scalar_ml.models import build_preset, list_presets

    head = get_task(name).head()
    for preset in [p for p in list_presets() if p.startswith(f"{name}/")]:
        net = build_preset(preset)
        assert (net.out_features, net.output) == (head.outputs, head.output), preset
        assert net.ends_with_sigmoid == (head.activation == "sigmoid"), preset


@pytest.mark.parametrize("name", task_names())
def test_task_pickles_as_its_registry_lookup(name: str) -> None:
    """Spawned DDP workers unpickle the LightningModule: a task (whose metrics hold lambdas) must
    pickle, and come back as the very registry object."""
    import pickle

    task = get_task(name)
    assert pickle.loads(pickle.dumps(task)) is task
