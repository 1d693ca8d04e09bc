"""Point-group augmentation (data.augment): the gather against the physics maps, valid and correctly
labelled batches for every task, the group (exact symmetries only: a negative control), determinism,
the unchanged streams without it, and exact resume through train()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_datamodules import POINTS, SAMPLER, SIZES, counting, detection, observables
from training_helpers import TINY, WARNING_FILTERS

from scalar_ml.config import ConfigError
from scalar_ml.data.augmentation import PointGroupAugmentation
from scalar_ml.data.datamodules import LatticeDataModule, SeededBatchSampler
from scalar_ml.physics.observables import flux_divergence, measure
from scalar_ml.physics.params import PhysicsParams
from scalar_ml.physics.symmetry import FIXED_MU_GROUP, element, generate_group

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]


def localisation(cache: Path, **kw) -> LatticeDataModule:
    kw.setdefault("worms", [0, 5])
    return LatticeDataModule(
        task="localisation",
        points=POINTS,
        lattice={"nt": 8, "nx": 8},
        batch_size=8,
        cache_dir=str(cache),
        sampler=SAMPLER,
        **SIZES,
        **kw,
    )


def _int(x: torch.Tensor) -> np.ndarray:
    a = x.numpy()
    assert np.array_equal(a, np.round(a)), "inputs must stay integer-valued"
    return a.astype(np.int32)


def _recomputed_labels(task: str, configs: np.ndarray) -> np.ndarray:
    """The task's labels computed from the configurations alone (independently of the task code)."""
    div = flux_divergence(configs)
    if task == "counting":
        return np.abs(div).sum(axis=(-2, -1))[:, None] / 2
    if task == "detection":
        return np.any(div != 0, axis=(-2, -1))[:, None].astype(np.float64)
    if task == "localisation":
        return np.abs(div)[:, None].astype(np.float64)
    obs = measure(configs, PhysicsParams(4.01, 1.0, 1.0))  # n, |phi|^2 do not depend on mu
    return np.stack([obs["n"], obs["phi2"]], axis=1)


# -- the gather -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lattice", [(6, 6), (5, 3)])
def test_gather_equals_the_physics_map_of_every_element(lattice: tuple[int, int]) -> None:
    square = lattice[0] == lattice[1]
    group = generate_group(["S", "T", "P", "C"] if square else ["T", "P", "C"])
    aug = PointGroupAugmentation(group, lattice)
    x = torch.randint(-3, 4, (3 * len(group), 4, *lattice)).float()
    which = torch.arange(len(group)).repeat(3)[torch.randperm(3 * len(group))]
    out = aug.apply(x, which)
    for b in range(x.shape[0]):
        assert torch.equal(out[b], group.elements[which[b]].apply(x[b]))
    if not square:
        with pytest.raises(ValueError, match="maps the 5x3 lattice onto a 3x5 one"):
            PointGroupAugmentation(generate_group(["S"]), lattice)


# -- batches of every task ------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [counting, detection, observables, localisation])
def test_augmented_batches_are_valid_and_their_labels_are_the_recomputed_ones(
    tiny_cache: Path, make
) -> None:
    dm = make(tiny_cache, augment="symmetry")
    task = dm.task.name
    assert dm.augment_group.names == ("1", "P", "TC", "TPC")  # every task trains at mu != 0
    dm.setup()
    train = dm.split("train")
    sampler = dm.train_dataloader().batch_sampler
    seen = torch.zeros(4, dtype=torch.long)
    for batch, (x, y) in zip(sampler, dm.train_dataloader(), strict=True):
        raw = train.inputs[batch.indices]
        for b in range(x.shape[0]):  # each sample is its own element of the group applied
            assert torch.equal(x[b], FIXED_MU_GROUP.elements[batch.elements[b]].apply(raw[b]))
        seen += torch.bincount(batch.elements, minlength=4)
        configs = _int(x)
        div = flux_divergence(configs)
        closed = train.worms[batch.indices] == 0
        assert not np.any(div[closed.numpy()])  # div k = 0 where it was
        assert np.all(configs[:, 2:] >= 0)  # l stays a pair count
        expected = _recomputed_labels(task, configs)
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert torch.all(seen > 0)  # every element was drawn


def test_the_label_check_has_power_an_element_that_is_no_symmetry_changes_n(
    tiny_cache: Path,
) -> None:
    """Negative control: T alone (no symmetry at mu != 0) flips n; the data module refuses it."""
    dm = observables(tiny_cache)
    dm.setup()
    x, y = dm.split("train").inputs, dm.split("train").targets
    assert torch.any(y[:, 0].abs() > 0.05)  # charged configurations: the control can fail
    moved = _recomputed_labels("observables", _int(element("T").apply(x)))
    assert not np.allclose(moved[:, 0], y[:, 0].numpy(), atol=1e-3)  # n is not invariant under T
    np.testing.assert_allclose(moved[:, 0], -y[:, 0].numpy(), atol=1e-6)  # it flips
    np.testing.assert_allclose(moved[:, 1], y[:, 1].numpy(), rtol=1e-6)  # |phi|^2 is invariant
    for bad, reason in (
        (["T"], "T maps the ensemble at mu = 0.95 onto the one at mu = -0.95"),
        (["C"], "C maps the ensemble at mu = 0.95"),
        (["P", "T"], "T maps the ensemble"),
    ):
        with pytest.raises(ConfigError, match=reason):
            observables(tiny_cache, augment=bad)
    with pytest.raises(ConfigError, match=r"S is not an exact symmetry.*mu = 1.*are <P, TC>"):
        counting(tiny_cache, augment=["S"])


def test_the_group_is_the_intersection_over_points_and_what_the_task_transforms(
    tmp_path: Path,
) -> None:
    """At mu = 0 every point symmetry holds; with a mu != 0 point only <P, TC>. No sampling here."""
    zero = {"a": {"eta": 4.25, "lam": 1.0, "mu": 0.0}, "b": {"eta": 4.01, "lam": 1.0, "mu": 0.0}}
    assert len(counting(tmp_path, points=zero, augment="symmetry").augment_group) == 16
    assert counting(tmp_path, points=zero, augment=["T"]).augment_group.names == ("1", "T")
    mixed = {**zero, "b": {"eta": 4.01, "lam": 1.0, "mu": 1.5}}
    assert str(counting(tmp_path, points=mixed, augment="symmetry").augment_group) == "<P, TC>"
    # observables at mu = 0 (8x8): everything but the swap, under which n is not determined
    obs = observables(
        tmp_path, physics={"eta": 4.25, "lam": 1.0, "mu": 0.0}, mu_values=[0.0],
        lattice={"nt": 8, "nx": 8}, augment="symmetry",
    )  # fmt: skip
    assert len(obs.augment_group) == 8 and not any(g.swap for g in obs.augment_group)
    with pytest.raises(ConfigError, match="cannot transform its targets under S"):
        observables(
            tmp_path, physics={"eta": 4.25, "lam": 1.0, "mu": 0.0}, mu_values=[0.0],
            lattice={"nt": 8, "nx": 8}, augment=["S"],
        )  # fmt: skip
    for bad, message in (
        ("yes", "must be one of none, symmetry or a non-empty list"),
        ([], "must be one of none, symmetry or a non-empty list"),
        (["X"], "unknown lattice symmetry 'X'"),
    ):
        with pytest.raises(ConfigError, match=message):
            counting(tmp_path, augment=bad)
    assert counting(tmp_path).augment_group is None
    assert not (tmp_path / "ensembles").exists()  # all of it before any sampling


# -- determinism ---------------------------------------------------------------------------------------------
def test_augmented_batches_depend_only_on_the_run_seed_and_epoch(tiny_cache: Path) -> None:
    def batches(shuffle_seed: int, epoch: int = 0, **kw) -> list[tuple[torch.Tensor, torch.Tensor]]:
        dm = localisation(tiny_cache, augment="symmetry", shuffle_seed=shuffle_seed, **kw)
        dm.setup()
        loader = dm.train_dataloader()
        loader.batch_sampler.set_epoch(epoch)
        return list(loader)

    def same(a, b) -> bool:
        return all(torch.equal(p, q) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
                   for p, q in ((xa, xb), (ya, yb)))  # fmt: skip

    first = batches(3)
    assert same(first, batches(3))
    assert not same(first, batches(4)) and not same(first, batches(3, epoch=1))
    assert same(batches(3, translate=True), batches(3, translate=True))


def test_without_augmentation_the_streams_are_unchanged() -> None:
    """The elements are drawn after the order and the shifts: adding them changes neither."""
    plain = SeededBatchSampler(40, 8, shuffle=True, seed=7, translate=True, lattice=(8, 8))
    grouped = SeededBatchSampler(
        40, 8, shuffle=True, seed=7, translate=True, lattice=(8, 8), n_elements=4
    )
    for a, b in zip(plain, grouped, strict=True):
        assert torch.equal(a.indices, b.indices) and torch.equal(a.shifts, b.shifts)
        assert a.elements is None and b.elements.shape == a.indices.shape
    with pytest.raises(ValueError, match="a seed is required"):
        SeededBatchSampler(40, 8, shuffle=False, n_elements=4)
    # DDP shards keep each sample's element
    whole = next(iter(SeededBatchSampler(12, 12, shuffle=True, seed=1, n_elements=4)))
    shard = next(iter(SeededBatchSampler(12, 12, shuffle=True, seed=1, n_elements=4,
                                         num_replicas=2, rank=1)))  # fmt: skip
    assert torch.equal(shard.indices, whole.indices[1::2])
    assert torch.equal(shard.elements, whole.elements[1::2])


def test_evaluation_batches_are_never_augmented(tiny_cache: Path) -> None:
    plain, augmented = counting(tiny_cache), counting(tiny_cache, augment="symmetry")
    plain.setup()
    augmented.setup()
    for a, b in zip(plain.val_dataloader(), augmented.val_dataloader(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert augmented.describe()["augment"] == ["1", "P", "TC", "TPC"]
    assert plain.describe()["augment"] is None


# -- training ------------------------------------------------------------------------------------------------
def test_augmented_training_is_reproducible_and_resumes_exactly(make_cfg, tmp_path: Path) -> None:
    from scalar_ml.training.train import train

    # counting's cosine schedule depends on max_epochs: a constant learning rate here
    common = [*TINY, "data.augment=symmetry", "data.translate=true", "seed=2", "~model/scheduler"]
    full = train(make_cfg([*common, "trainer.max_epochs=2"], run_dir=tmp_path / "full"))
    again = train(make_cfg([*common, "trainer.max_epochs=2"], run_dir=tmp_path / "again"))
    assert full["val/loss"] == again["val/loss"] and full["train/loss"] == again["train/loss"]
    train(make_cfg([*common, "trainer.max_epochs=1"], run_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(
        make_cfg([*common, "trainer.max_epochs=2", f"ckpt_path={last}"], run_dir=tmp_path / "res")
    )
    wa = torch.load(tmp_path / "full/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "res/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed["train/loss"] == full["train/loss"] and resumed["val/loss"] == full["val/loss"]
    without = [o for o in common if o != "data.augment=symmetry"]
    plain = train(make_cfg([*without, "trainer.max_epochs=2"], run_dir=tmp_path / "plain"))
    assert plain["train/loss"] != full["train/loss"]  # the augmentation was applied
