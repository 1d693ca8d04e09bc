r"""LightningDataModules for the three tasks (SPEC §5), on in-memory tensors from the ensemble cache.

Common to all three:

- **Ensembles** come from :func:`scalar_ml.data.cache.load_ensemble` (generated once, then read from
  the cache under ``cache_dir``), one per physics point, each of ``n_train + n_val + n_test``
  configurations sampled with Monte Carlo seed ``seed`` on the lattice ``lattice``.
- **Splits** are seeded (``seed``): each point's ensemble is permuted and cut into train/val/test, so
  every split holds every point. Sizes are *per point*.
- **Inputs** are the configurations ``(N, 4, Nt, Nx)`` as float32 (channels ``[k_t, k_x, l_t, l_x]``,
  axis −2 time, axis −1 space). **Targets** are float32 ``(N, d)`` and always recomputed from the
  configuration itself: ``(n, |φ|²)`` by :func:`scalar_ml.physics.observables.measure` (observables),
  ``any div k ≠ 0`` (detection) and ``½ Σ_x |div_x k|`` (counting) by
  :mod:`scalar_ml.data.violations`; they are checked against the cached values / the insertion intent
  and a mismatch is an error.
- **Batches** are drawn from whole tensors (one indexing operation per batch, no per-item Python):
  a :class:`SeededBatchSampler` yields index batches whose order depends only on
  ``(shuffle_seed, epoch)``, so training resumed from a checkpoint sees exactly the batches an
  uninterrupted run would have seen. Under DDP each rank takes its own share of every batch order.
- **Augmentation** (``translate=True``, training split only): every sample is shifted by its own
  random periodic translation (a ``torch.roll`` per sample, drawn from the same ``(seed, epoch)``
  stream). All targets are translation invariant. Useful for ST/FL; EQ is invariant anyway.

Two seeds: ``seed`` fixes the *data* (ensembles, inserted worms, splits); ``shuffle_seed`` (the run's
seed) fixes the batch order and the augmentation. Retraining with several run seeds therefore
compares network instances on identical data, as in the seed paper.

Everything is validated in ``__init__`` (before any sampling): a bad value raises ``ValueError``.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from scalar_ml.config import to_plain
from scalar_ml.data.cache import EnsembleRequest, load_ensemble
from scalar_ml.data.labels import insert_and_label, observable_targets
from scalar_ml.data.violations import (
    check_worms_fit,
)
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.params import Lattice, PhysicsParams

__all__ = [
    "SPLITS",
    "Batch",
    "CountingDataModule",
    "DetectionDataModule",
    "LatticeDataModule",
    "ObservablesDataModule",
    "SeededBatchSampler",
    "TensorBatchDataset",
    "roll_per_sample",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")

# Purposes of the independent random streams derived from the data seed.
_SPLIT_STREAM, _WORM_STREAM = 1, 2


def _stream(seed: int, *key: int) -> np.random.Generator:
    """An independent numpy Generator for ``(seed, *key)`` (stable across numpy versions)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def _torch_generator(*key: int) -> torch.Generator:
    """A CPU torch Generator seeded by a 63-bit hash of the integer tuple ``key``."""
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFFFFFFFFFF for k in key]).generate_state(
        2, np.uint32
    )
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
    return g


def roll_per_sample(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Periodically translate every sample of ``x`` ``(B, C, Nt, Nx)`` by its own ``shifts[b] = (s_t, s_x)``.

    Same as ``torch.roll(x[b], shifts=tuple(shifts[b]), dims=(-2, -1))`` for every ``b``, in one
    gather.

    >>> x = torch.arange(2 * 1 * 3 * 2).reshape(2, 1, 3, 2)
    >>> s = torch.tensor([[1, 0], [2, 1]])
    >>> torch.equal(roll_per_sample(x, s)[1], torch.roll(x[1], (2, 1), (-2, -1)))
    True
    """
    b, _, nt, nx = x.shape
    t_idx = (torch.arange(nt, device=x.device)[None, :] - shifts[:, 0:1]) % nt  # (B, Nt)
    x_idx = (torch.arange(nx, device=x.device)[None, :] - shifts[:, 1:2]) % nx  # (B, Nx)
    rows = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[rows, chans, t_idx[:, None, :, None], x_idx[:, None, None, :]]


class Batch(NamedTuple):
    """What :class:`SeededBatchSampler` yields: sample indices and optional per-sample shifts."""

    indices: torch.Tensor
    shifts: torch.Tensor | None = None


class SeededBatchSampler(Sampler[Batch]):
    """Index batches over ``n`` samples whose order depends only on ``(seed, epoch)``.

    Args:
        n: number of samples.
        batch_size: samples per batch (``>= 1``).
        shuffle: permute the samples every epoch (else ``0, 1, …, n−1``).
        seed: seed of the permutation (and of the shifts); required when shuffling or translating.
        drop_last: drop a last, incomplete batch.
        translate: also draw a periodic shift ``(s_t, s_x)`` per sample, uniform on ``lattice``.
        lattice: ``(Nt, Nx)``, needed with ``translate``.
        num_replicas, rank: DDP sharding of the epoch's sample order: rank ``r`` takes samples
            ``r, r + R, r + 2R, …``. With ``even`` (training) the order is first padded by wrapping
            around so that every rank gets the same number of samples (and steps, which DDP
            needs); without (evaluation) every sample is seen exactly once.
        even: see above.

    Lightning calls :meth:`set_epoch` before every training epoch (also after resuming).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int | None = None,
        drop_last: bool = False,
        translate: bool = False,
        lattice: tuple[int, int] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
    ) -> None:
        if n < 1:
            raise ValueError(f"cannot batch an empty split (n = {n})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if (shuffle or translate) and seed is None:
            raise ValueError("a seed is required for shuffling or translation")
        if translate and lattice is None:
            raise ValueError("translate=True needs the lattice size")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.n, self.batch_size = int(n), int(batch_size)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.translate, self.lattice = translate, lattice
        self.num_replicas, self.rank, self.even = int(num_replicas), int(rank), even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the batch order of ``epoch`` (called by Lightning at the start of every epoch)."""
        self.epoch = int(epoch)

    def _n_local(self) -> int:
        """Samples of this rank per epoch."""
        r = self.num_replicas
        if r == 1:
            return self.n
        if self.even:
            return math.ceil(self.n / r)
        return len(range(self.rank, self.n, r))

    def __len__(self) -> int:
        m = self._n_local()
        return m // self.batch_size if self.drop_last else math.ceil(m / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        gen = _torch_generator(0 if self.seed is None else self.seed, self.epoch, 0x5EED)
        order = torch.randperm(self.n, generator=gen) if self.shuffle else torch.arange(self.n)
        shifts = None
        if self.translate:
            assert self.lattice is not None
            nt, nx = self.lattice
            shifts = torch.stack(
                (
                    torch.randint(nt, (self.n,), generator=gen),
                    torch.randint(nx, (self.n,), generator=gen),
                ),
                dim=1,
            )
        if self.num_replicas > 1:
            positions = torch.arange(self.n)
            if self.even:
                total = math.ceil(self.n / self.num_replicas) * self.num_replicas
                positions = torch.arange(total) % self.n  # wrap around to equal shares
            positions = positions[self.rank :: self.num_replicas]
            order = order[positions]
            shifts = None if shifts is None else shifts[positions]
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, len(order)))
            yield Batch(order[sl], None if shifts is None else shifts[sl])


class TensorBatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Whole-batch access to in-memory ``inputs`` ``(N, 4, Nt, Nx)`` and ``targets`` ``(N, d)``.

    ``dataset[Batch(indices, shifts)]`` (also via ``__getitems__``, which the DataLoader uses with a
    batch sampler) returns ``(x, y)`` for the whole batch, translated by ``shifts`` when given.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"{inputs.shape[0]} inputs but {targets.shape[0]} targets")
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, key: Batch | int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(key, Batch):
            x = self.inputs[key.indices]
            if key.shifts is not None:
                x = roll_per_sample(x, key.shifts)
            return x, self.targets[key.indices]
        return self.inputs[key], self.targets[key]

    def __getitems__(self, keys: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(keys, Batch):
            return self[keys]
        return self[Batch(torch.as_tensor(keys, dtype=torch.long))]


def _whole_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """collate_fn for :class:`TensorBatchDataset`: batches arrive already stacked."""
    return batch


# -- validation helpers (all raise ValueError with the offending name) --------------------------------
def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _lattice(value: Any) -> Lattice:
    if isinstance(value, Lattice):
        lat = value
    elif isinstance(value, Mapping):
        unknown = set(value) - {"nt", "nx"}
        if unknown or not {"nt", "nx"} <= set(value):
            raise ValueError(f"lattice must be {{nt: ..., nx: ...}}, got {dict(value)!r}")
        lat = Lattice(value["nt"], value["nx"])
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        lat = Lattice(value[0], value[1])
    else:
        raise ValueError(f"lattice must be {{nt: ..., nx: ...}} or [nt, nx], got {value!r}")
    lat.validate()
    return lat


def _physics(name: str, value: Any) -> PhysicsParams:
    if isinstance(value, PhysicsParams):
        params = value
    elif isinstance(value, Mapping):
        if set(value) != {"eta", "lam", "mu"}:
            raise ValueError(f"{name} must have exactly the keys eta, lam, mu, got {sorted(value)}")
        params = PhysicsParams(value["eta"], value["lam"], value["mu"])
    else:
        raise ValueError(f"{name} must be a mapping {{eta, lam, mu}}, got {value!r}")
    try:
        params.validate()
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    return params


def _named_points(points: Any) -> dict[str, PhysicsParams]:
    """``{name: {eta, lam, mu}}`` or a list of ``{eta, lam, mu}`` (named ``p0, p1, …``)."""
    if isinstance(points, Mapping):
        items = [(str(k), v) for k, v in points.items()]
    elif isinstance(points, Sequence) and not isinstance(points, str):
        items = [(f"p{i}", v) for i, v in enumerate(points)]
    else:
        raise ValueError(f"points must be a mapping or a list of {{eta, lam, mu}}, got {points!r}")
    if not items:
        raise ValueError("points must not be empty")
    out = {name: _physics(f"points.{name}", value) for name, value in items}
    if len(set(out.values())) != len(out):
        raise ValueError(f"points must be distinct, got {[p.as_dict() for p in out.values()]}")
    return out


def _worm_list(name: str, worms: Any, lattice: Lattice, minimum: int) -> list[int]:
    if isinstance(worms, numbers.Integral) and not isinstance(worms, bool):
        worms = [worms]
    if not isinstance(worms, Sequence) or isinstance(worms, str) or not worms:
        raise ValueError(f"{name} must be a non-empty list of integers, got {worms!r}")
    values = [_int(f"{name}[{i}]", w, minimum) for i, w in enumerate(worms)]
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat values, got {values}")
    try:
        check_worms_fit(values, lattice.nt, lattice.nx)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    return values


@dataclass(frozen=True)
class _SplitData:
    inputs: torch.Tensor  # (N, 4, Nt, Nx) float32
    targets: torch.Tensor  # (N, d) float32
    point: torch.Tensor  # (N,) int64: index into the module's points
    worms: torch.Tensor  # (N,) int64: inserted open worms (0 for observables)


class LatticeDataModule(L.LightningDataModule):
    """Shared machinery of the three task data modules (see the module docstring).

    Args:
        lattice: the training lattice ``{nt, nx}``.
        n_train, n_val, n_test: configurations *per physics point* in each split (``n_val >= 1``).
        batch_size: training batch size (``>= 1``).
        eval_batch_size: validation/test batch size (default: ``max(batch_size, 1024)``).
        seed: the data seed (Monte Carlo ensembles, inserted worms, splits).
        shuffle_seed: the run seed (batch order, augmentation); default ``seed``.
        translate: random periodic translation of every training sample.
        drop_last: drop the last incomplete training batch.
        cache_dir: ensemble cache directory (default ``scalar_ml.paths.default_data_dir()``).
        sampler: options of the worm sampler (``n_chains``, ``n_therm``, ``sweeps_between``,
            ``progress``) for ensembles that are not cached yet.
        pin_memory: pin batches (for GPU training).
    """

    task: ClassVar[str] = ""
    target_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        lattice: Mapping[str, int] | Lattice,
        n_train: int,
        n_val: int,
        n_test: int,
        batch_size: int,
        eval_batch_size: int | None = None,
        seed: int = 0,
        shuffle_seed: int | None = None,
        translate: bool = False,
        drop_last: bool = False,
        cache_dir: str | None = None,
        sampler: Mapping[str, Any] | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.lattice = _lattice(to_plain(lattice))
        self.n_train = _int("n_train", n_train, 1)
        self.n_val = _int("n_val", n_val, 1)
        self.n_test = _int("n_test", n_test, 0)
        self.batch_size = _int("batch_size", batch_size, 1)
        self.eval_batch_size = (
            max(self.batch_size, 1024)
            if eval_batch_size is None
            else _int("eval_batch_size", eval_batch_size, 1)
        )
        self.seed = _int("data seed", seed, 0)
        self.shuffle_seed = (
            self.seed if shuffle_seed is None else _int("shuffle_seed", shuffle_seed, 0)
        )
        for name, flag in (
            ("translate", translate),
            ("drop_last", drop_last),
            ("pin_memory", pin_memory),
        ):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be true or false, got {flag!r}")
        self.translate, self.drop_last, self.pin_memory = translate, drop_last, pin_memory
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.sampler_options: dict[str, Any] = dict(to_plain(sampler) or {})
        self._splits: dict[str, _SplitData] | None = None

    # -- subclasses -------------------------------------------------------------------------------
    @property
    def points(self) -> dict[str, PhysicsParams]:
        """The physics points, by name, in a fixed order (``point`` indices refer to it)."""
        raise NotImplementedError

    def _make_split(
        self,
        point_index: int,
        params: PhysicsParams,
        configs: np.ndarray,
        ensemble: Ensemble,
        rows: np.ndarray,
        split: str,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(configs, targets (n, d) float, worms (n,) int)`` of one point's split."""
        raise NotImplementedError

    # -- common ---------------------------------------------------------------------------------------
    @property
    def n_configs(self) -> int:
        """Configurations drawn per physics point (``n_train + n_val + n_test``)."""
        return self.n_train + self.n_val + self.n_test

    def _validate_requests(self) -> None:
        """Check every ensemble request (and the sampler options) without touching the disk."""
        for name, params in self.points.items():
            try:
                EnsembleRequest.create(
                    params, self.lattice, self.n_configs, self.seed, **self.sampler_options
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"data point {name!r}: {exc}") from exc

    def ensembles(self) -> list[Ensemble]:
        """One ensemble per point, from the cache (sampled and stored on the first call)."""
        out = []
        for name, params in self.points.items():
            log.info(
                "ensemble %s: %s on %s, %d configs", name, params, self.lattice, self.n_configs
            )
            out.append(
                load_ensemble(
                    params,
                    self.lattice,
                    self.n_configs,
                    self.seed,
                    cache_dir=self.cache_dir,
                    **self.sampler_options,
                )
            )
        return out

    def prepare_data(self) -> None:
        """Make sure every ensemble is in the cache (runs once per node under DDP)."""
        if self._splits is None:
            self.ensembles()

    def setup(self, stage: str | None = None) -> None:
        """Build all three splits once (inputs, recomputed and checked targets) as tensors."""
        if self._splits is not None:
            return
        parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]] = {
            s: [] for s in SPLITS
        }
        sizes = {"train": self.n_train, "val": self.n_val, "test": self.n_test}
        for i, ((_, params), ens) in enumerate(
            zip(self.points.items(), self.ensembles(), strict=True)
        ):
            perm = _stream(self.seed, _SPLIT_STREAM, i).permutation(len(ens))
            start = 0
            for split in SPLITS:
                rows = np.sort(perm[start : start + sizes[split]])
                start += sizes[split]
                if rows.size == 0:
                    continue
                configs, targets, worms = self._make_split(
                    i, params, ens.configs[rows], ens, rows, split
                )
                parts[split].append((configs, targets, worms, i))
        splits = {}
        for split in SPLITS:
            if not parts[split]:
                continue
            configs = np.concatenate([p[0] for p in parts[split]])
            targets = np.concatenate([p[1] for p in parts[split]])
            worms = np.concatenate([p[2] for p in parts[split]])
            point = np.concatenate([np.full(len(p[0]), p[3]) for p in parts[split]])
            splits[split] = _SplitData(
                inputs=torch.from_numpy(configs.astype(np.float32)),
                targets=torch.from_numpy(targets.astype(np.float32).reshape(len(configs), -1)),
                point=torch.from_numpy(point.astype(np.int64)),
                worms=torch.from_numpy(worms.astype(np.int64)),
            )
        self._splits = splits

    def split(self, name: str) -> _SplitData:
        """The tensors of split ``name`` (after :meth:`setup`)."""
        if self._splits is None:
            raise RuntimeError("call setup() first")
        if name not in self._splits:
            raise ValueError(f"split {name!r} is empty or unknown (n_{name} = 0?)")
        return self._splits[name]

    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, split: str, *, train: bool) -> DataLoader:
        data = self.split(split)
        replicas, rank = self._replicas()
        trainer = getattr(self, "trainer", None)
        overfit = bool(trainer is not None and trainer.overfit_batches)
        shuffle = train and not overfit
        sampler = SeededBatchSampler(
            len(data.inputs),
            self.batch_size if train else self.eval_batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            drop_last=self.drop_last if train else False,
            translate=self.translate and shuffle,
            lattice=self.lattice.shape,
            num_replicas=replicas,
            rank=rank,
            even=train,
        )
        return DataLoader(
            TensorBatchDataset(data.inputs, data.targets),
            batch_sampler=sampler,
            collate_fn=_whole_batch,
            num_workers=0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def describe(self) -> dict[str, Any]:
        """Plain, JSON-friendly description of the data (stored in checkpoints and metrics)."""
        return {
            "task": self.task,
            "targets": list(self.target_names),
            "lattice": {"nt": self.lattice.nt, "nx": self.lattice.nx},
            "points": {k: v.as_dict() for k, v in self.points.items()},
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "seed": self.seed,
            "translate": self.translate,
        }


class ObservablesDataModule(LatticeDataModule):
    """Task 1: regression of ``(n, |φ|²)`` per configuration.

    Args:
        physics: the base couplings ``{eta, lam, mu}``.
        mu_values: chemical potentials to train on (one ensemble each, with ``physics.eta/lam``);
            ``None`` uses ``physics.mu`` alone.
        **kwargs: see :class:`LatticeDataModule`.
    """

    task = "observables"
    target_names = ("n", "phi2")

    def __init__(
        self,
        *,
        physics: Mapping[str, float] | PhysicsParams,
        mu_values: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        base = _physics("physics", to_plain(physics))
        mus = to_plain(mu_values)
        if mus is None:
            mus = [base.mu]
        if isinstance(mus, numbers.Real) and not isinstance(mus, bool):
            mus = [mus]
        if not isinstance(mus, Sequence) or isinstance(mus, str) or not mus:
            raise ValueError(f"mu_values must be a non-empty list of numbers, got {mu_values!r}")
        pts: dict[str, PhysicsParams] = {}
        for mu in mus:
            params = _physics(f"mu = {mu!r}", {"eta": base.eta, "lam": base.lam, "mu": mu})
            name = f"mu{params.mu:g}"
            if name in pts:
                raise ValueError(f"mu_values must not repeat values, got {list(mus)}")
            pts[name] = params
        self._points = pts
        self._validate_requests()

    @property
    def points(self) -> dict[str, PhysicsParams]:
        return self._points

    def _make_split(self, point_index, params, configs, ensemble, rows, split):
        targets = observable_targets(configs, params, ensemble.n[rows], ensemble.phi2[rows])
        return configs, targets, np.zeros(len(configs), dtype=np.int64)


class _ViolationDataModule(LatticeDataModule):
    """Detection and counting: open worms inserted into closed configurations (SPEC §5)."""

    def __init__(
        self,
        *,
        points: Mapping[str, Mapping[str, float]] | Sequence[Mapping[str, float]],
        max_worm_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._points = _named_points(to_plain(points))
        if max_worm_length is not None:
            _int("max_worm_length", max_worm_length, 1)
        self.max_worm_length = max_worm_length

    @property
    def points(self) -> dict[str, PhysicsParams]:
        return self._points

    def _worm_counts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def _make_split(self, point_index, params, configs, ensemble, rows, split):
        rng = _stream(self.seed, _WORM_STREAM, point_index, SPLITS.index(split))
        counts = self._worm_counts(rng, len(configs))
        out, labels = insert_and_label(
            self.task, configs, counts, rng, max_length=self.max_worm_length
        )
        return out, labels, counts

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "max_worm_length": self.max_worm_length}


class DetectionDataModule(_ViolationDataModule):
    """Task 2: does the configuration violate flux conservation? Label ``any_x div_x k ≠ 0``.

    In every point's split, a seeded half of the configurations (``⌊n/2⌋``) gets open worms, their
    number drawn uniformly from ``worms`` (each ``>= 1``); the rest stay closed.

    Args:
        points: physics points ``{name: {eta, lam, mu}}`` (or a list).
        worms: worm counts for the violated half (default ``[1]``).
        max_worm_length: nominal maximal worm length (default ``Nt + Nx``).
        **kwargs: see :class:`LatticeDataModule`.
    """

    task = "detection"
    target_names = ("violated",)

    def __init__(self, *, worms: Sequence[int] | int = (1,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worms = _worm_list("worms", to_plain(worms), self.lattice, 1)
        self._validate_requests()

    def _worm_counts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        counts = np.zeros(n, dtype=np.int64)
        violated = rng.permutation(n)[: n // 2]
        counts[violated] = rng.choice(np.asarray(self.worms, dtype=np.int64), size=violated.size)
        return counts

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "worms": list(self.worms)}


class CountingDataModule(_ViolationDataModule):
    """Task 3: the number of open worms, target ``½ Σ_x |div_x k|`` (end points never coincide).

    Each point's split is divided as evenly as possible among the worm counts in ``worms`` (seeded
    assignment), e.g. half with 0 and half with 5 worms for the default ``[0, 5]``.

    Args:
        points: physics points ``{name: {eta, lam, mu}}`` (or a list).
        worms: worm counts (integers ``0 <= M <= Nt·Nx / 2``; default ``[0, 5]``).
        max_worm_length: nominal maximal worm length (default ``Nt + Nx``).
        **kwargs: see :class:`LatticeDataModule`.
    """

    task = "counting"
    target_names = ("count",)

    def __init__(self, *, worms: Sequence[int] | int = (0, 5), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worms = _worm_list("worms", to_plain(worms), self.lattice, 0)
        self._validate_requests()

    def _worm_counts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = np.asarray(self.worms, dtype=np.int64)
        return values[np.arange(n) % values.size][rng.permutation(n)]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "worms": list(self.worms)}


DATAMODULES: dict[str, type[LatticeDataModule]] = {
    cls.task: cls for cls in (ObservablesDataModule, DetectionDataModule, CountingDataModule)
}
