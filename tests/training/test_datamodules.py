"""Data modules: every batch's labels against div k / recomputed observables, seeded splits and
batch orders, translations, the cache (no regeneration), and validation before any sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import WARNING_FILTERS

from scalar_ml.data.datamodules import (
    Batch,
    LatticeDataModule,
    SeededBatchSampler,
    roll_per_sample,
)
from scalar_ml.physics.observables import flux_divergence, measure
from scalar_ml.physics.params import PhysicsParams

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]

SAMPLER = {"n_chains": 2, "n_therm": 20, "sweeps_between": 2, "progress": False}
POINTS = {"a": {"eta": 4.25, "lam": 1.0, "mu": 1.0}, "b": {"eta": 4.01, "lam": 1.0, "mu": 1.5}}
SIZES = {"n_train": 32, "n_val": 16, "n_test": 16}


def _violation_module(task: str, cache: Path, **kw):
    args = {
        "task": task,
        "points": POINTS,
        "lattice": {"nt": 8, "nx": 8},
        "batch_size": 8,
        "cache_dir": str(cache),
        "sampler": SAMPLER,
        **SIZES,
        **kw,
    }
    return LatticeDataModule(**args)


def counting(cache: Path, **kw) -> LatticeDataModule:
    kw.setdefault("worms", [0, 5])
    return _violation_module("counting", cache, **kw)


def detection(cache: Path, **kw) -> LatticeDataModule:
    kw.setdefault("worms", [1])
    return _violation_module("detection", cache, **kw)


def observables(cache: Path, **kw) -> LatticeDataModule:
    args = {
        "task": "observables",
        "physics": {"eta": 4.01, "lam": 1.0, "mu": 1.0},
        "mu_values": [0.95, 1.05],
        "lattice": {"nt": 60, "nx": 4},
        "batch_size": 8,
        "cache_dir": str(cache),
        "sampler": SAMPLER,
        **SIZES,
        **kw,
    }
    return LatticeDataModule(**args)


def _all_batches(dm, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[
        split
    ]()
    return list(loader)


def _as_configs(x: torch.Tensor) -> np.ndarray:
    configs = x.numpy()
    assert np.array_equal(configs, np.round(configs)), "inputs must be integer-valued"
    return configs.astype(np.int32)


@pytest.mark.parametrize("translate", [False, True])
def test_counting_labels_of_every_batch_equal_half_the_absolute_divergence(
    tiny_cache: Path, translate: bool
) -> None:
    dm = counting(tiny_cache, translate=translate)
    dm.prepare_data()
    dm.setup()
    for split in ("train", "val", "test"):
        seen = 0
        for x, y in _all_batches(dm, split):
            assert (
                x.dtype == torch.float32 and x.shape[1:] == (4, 8, 8) and y.shape == (x.shape[0], 1)
            )
            count = np.abs(flux_divergence(_as_configs(x))).sum(axis=(-2, -1)) / 2
            np.testing.assert_array_equal(y[:, 0].numpy(), count)
            assert set(np.unique(count)) <= {0, 5}
            seen += x.shape[0]
        n = {"train": 32, "val": 16, "test": 16}[split] * 2
        assert seen == n
        worms = dm.split(split).worms.numpy()
        point = dm.split(split).point.numpy()
        for p in (0, 1):  # worm counts spread evenly within every point
            assert (worms[point == p] == 0).sum() == (worms[point == p] == 5).sum()


def test_detection_labels_of_every_batch_equal_any_divergence(tiny_cache: Path) -> None:
    dm = detection(tiny_cache, worms=[1, 2, 3])
    dm.setup()
    for split in ("train", "val", "test"):
        labels = []
        for x, y in _all_batches(dm, split):
            violated = np.any(flux_divergence(_as_configs(x)) != 0, axis=(-2, -1))
            np.testing.assert_array_equal(y[:, 0].numpy(), violated.astype(np.float32))
            labels.append(y[:, 0])
        labels = torch.cat(labels)
        assert labels.sum() == labels.numel() // 2  # half of every point's split is violated
        assert set(dm.split(split).worms.unique().tolist()) <= {0, 1, 2, 3}


@pytest.mark.parametrize("translate", [False, True])
def test_observables_targets_of_every_batch_equal_the_recomputed_observables(
    tiny_cache: Path, translate: bool
) -> None:
    dm = observables(tiny_cache, translate=translate)
    dm.setup()
    for split in ("train", "val", "test"):
        for x, y in _all_batches(dm, split):
            configs = _as_configs(x)
            # Every configuration of a batch belongs to one of the two mu values: measure with eta, lam
            # (n and |phi|^2 do not depend on mu given the configuration).
            obs = measure(configs, PhysicsParams(4.01, 1.0, 1.0))
            np.testing.assert_allclose(y[:, 0].numpy(), obs["n"], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(y[:, 1].numpy(), obs["phi2"], rtol=1e-6, atol=1e-7)


def test_translation_shifts_samples_periodically_and_only_in_training(tiny_cache: Path) -> None:
    plain, shifted = counting(tiny_cache), counting(tiny_cache, translate=True)
    plain.setup()
    shifted.setup()
    xs, ys = next(iter(shifted.train_dataloader()))
    sampler = shifted.train_dataloader().batch_sampler
    first = next(iter(sampler))
    raw = shifted.split("train").inputs[first.indices]
    assert torch.equal(xs, roll_per_sample(raw, first.shifts))
    assert not torch.equal(xs, raw)  # some sample moved
    for b in range(raw.shape[0]):
        s_t, s_x = first.shifts[b].tolist()
        assert torch.equal(xs[b], torch.roll(raw[b], (s_t, s_x), (-2, -1)))
    assert torch.equal(ys, shifted.split("train").targets[first.indices])
    # Evaluation batches are never shifted.
    assert torch.equal(
        next(iter(shifted.val_dataloader()))[0], next(iter(plain.val_dataloader()))[0]
    )


def test_splits_are_seeded_disjoint_and_cover_each_point(tiny_cache: Path) -> None:
    a, b, c = (
        counting(tiny_cache, seed=0),
        counting(tiny_cache, seed=0),
        counting(tiny_cache, seed=0, n_train=24),
    )
    for dm in (a, b, c):
        dm.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(a.split(split).inputs, b.split(split).inputs)
        assert torch.equal(a.split(split).targets, b.split(split).targets)
    # Disjoint: the closed parts (l channels are untouched by worms) of train/val/test differ per config.
    keys = {
        s: {bytes(x[2:].numpy().tobytes()) for x in a.split(s).inputs}
        for s in ("train", "val", "test")
    }
    assert (
        not keys["train"] & keys["val"]
        and not keys["train"] & keys["test"]
        and not keys["val"] & keys["test"]
    )
    assert len(c.split("train").inputs) == 48  # sizes are per point
    assert a.split("train").point.bincount().tolist() == [32, 32]


def test_batch_order_depends_only_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int, **kw) -> list[list[int]]:
        s = SeededBatchSampler(50, 8, shuffle=True, seed=seed, **kw)
        s.set_epoch(epoch)
        return [b.indices.tolist() for b in s]

    assert order(3, 1) == order(3, 1)
    assert order(3, 1) != order(3, 2) and order(3, 1) != order(4, 1)
    flat = [i for batch in order(3, 1) for i in batch]
    assert sorted(flat) == list(range(50)) and len(order(3, 1)) == 7
    assert len(order(3, 1, drop_last=True)) == 6
    # DDP, training: equal shares of the same epoch order (wrapped around), disjoint up to the padding.
    r0, r1 = order(3, 1, num_replicas=3, rank=0), order(3, 1, num_replicas=3, rank=1)
    r2 = order(3, 1, num_replicas=3, rank=2)
    shares = [[i for b in r for i in b] for r in (r0, r1, r2)]
    assert [len(x) for x in shares] == [17, 17, 17] and [len(r) for r in (r0, r1, r2)] == [3, 3, 3]
    assert sorted(set().union(*map(set, shares))) == list(range(50))
    epoch_order = [i for b in order(3, 1) for i in b]
    assert shares[0][:3] == epoch_order[0:9:3] and shares[1][:3] == epoch_order[1:10:3]
    # DDP, evaluation: every sample exactly once over the ranks, no padding.
    ev = [
        [
            i
            for b in SeededBatchSampler(50, 8, shuffle=False, num_replicas=3, rank=r, even=False)
            for i in b.indices.tolist()
        ]
        for r in range(3)
    ]
    assert sorted(ev[0] + ev[1] + ev[2]) == list(range(50)) and [len(x) for x in ev] == [17, 17, 16]
    assert [b.indices.tolist() for b in SeededBatchSampler(5, 2, shuffle=False)] == [
        [0, 1],
        [2, 3],
        [4],
    ]


def test_roll_per_sample_matches_torch_roll() -> None:
    x = torch.randn(5, 4, 6, 3)
    shifts = torch.tensor([[0, 0], [1, 2], [5, 1], [3, 0], [2, 2]])
    out = roll_per_sample(x, shifts)
    for b in range(5):
        assert torch.equal(out[b], torch.roll(x[b], tuple(shifts[b].tolist()), (-2, -1)))
    assert isinstance(Batch(torch.arange(2)), tuple)


def test_cached_ensembles_are_not_regenerated(tiny_cache: Path, monkeypatch) -> None:
    counting(tiny_cache).setup()  # make sure the entries exist

    def refuse(*args, **kwargs):
        raise AssertionError("the sampler must not run for cached ensembles")

    monkeypatch.setattr("scalar_ml.physics.ensemble.generate_ensemble", refuse)
    dm = counting(tiny_cache)
    dm.prepare_data()
    dm.setup()
    assert len(dm.split("train").inputs) == 64
    with pytest.raises(AssertionError, match="must not run"):
        counting(tiny_cache, seed=99).setup()  # a different data seed is a different ensemble


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (counting, {"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        (counting, {"n_train": 0}, "n_train must be an integer >= 1"),
        (counting, {"worms": [0, 33]}, "at most 32 worms fit"),
        (counting, {"worms": [0, 0]}, "must not repeat"),
        (counting, {"worms": [-1, 5]}, "worms.* must be an integer >= 0"),
        (detection, {"worms": [0, 1]}, r"worms\[0\] must be an integer >= 1"),
        (
            counting,
            {"points": {"a": {"eta": 4.0, "lam": -1.0, "mu": 1.0}}},
            "points.a: lam must be >= 0",
        ),
        (counting, {"points": {}}, "must not be empty"),
        (counting, {"points": {"a": {"eta": 4.2, "mu": 1.0}}}, "exactly the keys eta, lam, mu"),
        (counting, {"lattice": {"nt": 1, "nx": 8}}, "lattice.nt must be >= 2"),
        (counting, {"sampler": {"n_chains": 0}}, "n_chains must be an integer >= 1"),
        (counting, {"sampler": {"bogus": 1}}, "unknown sampler option"),
        (observables, {"mu_values": []}, "mu_values must be a non-empty list"),
        (observables, {"mu_values": [1.0, 1.0]}, "must not repeat"),
        (observables, {"physics": {"eta": 4.01, "lam": 0.0, "mu": 1.0}}, "free theory"),
        (counting, {"translate": "yes"}, "translate must be true or false"),
    ],
)
def test_bad_arguments_fail_before_any_sampling(
    tmp_path: Path, make, kwargs: dict, message: str
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=message):
        make(cache, **kwargs)
    assert not cache.exists()
