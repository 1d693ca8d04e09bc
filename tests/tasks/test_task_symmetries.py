"""Task.transform_targets against the labels recomputed from transformed configurations: every task,
every element of D4 × C2 it admits, numpy and torch; elements it refuses are refused for a reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalar_ml.physics.params import PhysicsParams
from scalar_ml.physics.symmetry import ALL_ELEMENTS, element
from scalar_ml.physics.theory import get_theory
from scalar_ml.tasks import ClosedSample, Task, get_task, task_names
from scalar_ml.tasks.violations import ViolationTask

P = PhysicsParams(4.01, 1.0, 1.5)


def closed_configs(rng: np.random.Generator, n: int, nt: int, nx: int) -> np.ndarray:
    """Closed configurations: random plaquette loops, temporal and spatial windings, random l."""
    cfg = np.zeros((n, 4, nt, nx), dtype=np.int32)
    for i in range(n):
        m = int(rng.integers(0, 2 * nt * nx))
        t, x, s = rng.integers(0, nt, m), rng.integers(0, nx, m), rng.choice([-1, 1], m)
        np.add.at(cfg[i, 0], (t, x), s)
        np.add.at(cfg[i, 1], ((t + 1) % nt, x), s)
        np.add.at(cfg[i, 0], (t, (x + 1) % nx), -s)
        np.add.at(cfg[i, 1], (t, x), -s)
        cfg[i, 0, :, rng.integers(0, nx)] += rng.integers(-2, 3)  # temporal winding: charge
        cfg[i, 1, rng.integers(0, nt), :] += rng.integers(-1, 2)  # spatial winding
    cfg[:, 2:] = rng.integers(0, 3, (n, 2, nt, nx))
    return cfg


def examples(task: Task, configs: np.ndarray, rng: np.random.Generator):
    theory = get_theory()
    worms = sorted({task.min_worms, 3}) if task.inserts_worms else [0]
    counts = task.training_counts(rng, len(configs), worms)
    sample = ClosedSample(configs, P, theory.measure(configs, P))
    x, y = task.make_examples(sample, counts, rng)
    return x, y, counts


def relabel(task: Task, configs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The task's own labels of ``configs`` (recomputed from the configurations, checked)."""
    if isinstance(task, ViolationTask):
        return task.label(configs, counts)
    theory = get_theory()
    sample = ClosedSample(configs, P, theory.measure(configs, P))
    return task.make_examples(sample, np.zeros(len(configs), dtype=np.int64), None)[1]


@pytest.mark.parametrize("lattice", [(6, 6), (6, 4)])
@pytest.mark.parametrize("name", task_names())
def test_transformed_targets_are_the_labels_of_the_transformed_configurations(
    name: str, lattice: tuple[int, int]
) -> None:
    task = get_task(name)
    rng = np.random.default_rng(11)
    x, y, counts = examples(task, closed_configs(rng, 12, *lattice), rng)
    checked = 0
    for g in ALL_ELEMENTS:
        if g.swap and lattice[0] != lattice[1]:
            continue  # maps the lattice onto another one: never an augmentation
        if not task.transforms_targets(g):
            with pytest.raises(ValueError, match=f"no target transformation for {g.name}"):
                task.transform_targets(g, y)
            continue
        expected = relabel(task, g.apply(x), counts)
        np.testing.assert_allclose(task.transform_targets(g, y), expected, rtol=1e-12, atol=1e-12)
        moved = task.transform_targets(g, torch.from_numpy(y))
        assert isinstance(moved, torch.Tensor)
        np.testing.assert_allclose(moved.numpy(), expected, rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked >= 8  # at least every element without the swap


def test_the_check_has_power_n_flips_under_t_and_c_alone() -> None:
    """Negative control: calling the observables' targets invariant under T (the default rule)
    would be wrong: the recomputed n changes sign, and the transform says so."""
    task = get_task("observables")
    rng = np.random.default_rng(3)
    x, y, counts = examples(task, closed_configs(rng, 12, 6, 4), rng)
    assert np.any(np.abs(y[:, 0]) > 0.05)  # charged configurations
    for name in ("T", "C", "TP", "PC"):
        moved = relabel(task, element(name).apply(x), counts)
        assert not np.allclose(moved, y)  # not invariant ...
        np.testing.assert_allclose(task.transform_targets(element(name), y), moved, atol=1e-12)
    assert np.allclose(relabel(task, element("TC").apply(x), counts), y)  # ... TC keeps n


def test_the_swap_is_refused_for_n_because_n_does_not_determine_the_image() -> None:
    """Two configurations with equal (n, |phi|^2) whose S-images have different n."""
    task = get_task("observables")
    a = np.zeros((2, 4, 4, 4), dtype=np.int32)
    a[0, 1, 1, :] = 1  # a spatial winding ...
    a[1, 1, 1, :] = -1  # ... and the opposite one: the same |k|, no temporal flux
    y = relabel(task, a, np.zeros(2))
    assert np.array_equal(y[0], y[1]) and y[0, 0] == 0
    moved = relabel(task, element("S").apply(a), np.zeros(2))
    assert moved[0, 0] == -moved[1, 0] != 0
    assert not task.transforms_targets(element("S"))


def test_a_per_site_task_must_say_how_its_fields_move() -> None:
    class Sites(Task):
        name, targets, per_site = "sites", ("field",), True

    class Totals(Task):
        name, targets = "totals", ("total",)

    assert not Sites().transforms_targets(element("P"))
    with pytest.raises(ValueError, match=r"task sites: the targets \['field'\] of P·x"):
        Sites().transform_targets(element("P"), np.zeros((1, 1, 4, 4)))
    y = np.arange(3.0)[:, None]
    out = Totals().transform_targets(element("TC"), y)
    assert np.array_equal(out, y) and out is not y
