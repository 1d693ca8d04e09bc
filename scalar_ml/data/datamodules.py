r"""The LightningDataModule of every task, on in-memory tensors from the ensemble cache.

:class:`LatticeDataModule` knows nothing task-specific; it asks its task
(:func:`scalar_ml.tasks.get_task`) to make the examples:

- **Ensembles** come from :func:`scalar_ml.data.cache.load_ensemble` (generated once, then read from
  the cache under ``cache_dir``), one per physics point, each of ``n_train + n_val + n_test``
  configurations sampled with Monte Carlo seed ``seed`` on the lattice ``lattice``. The points are
  named points (``points``) or a scan of the theory's scan parameter (``physics`` + ``mu_values``).
- **Splits** are seeded (``seed``): each point's ensemble is permuted and cut into train/val/test, so
  every split holds every point. Sizes are *per point*.
- **Examples**: for each point's split the task draws worm counts from ``worms``
  (:meth:`~scalar_ml.tasks.Task.training_counts`) and makes inputs and targets
  (:meth:`~scalar_ml.tasks.Task.make_examples`), always recomputing the labels from the
  configurations and checking them. Inputs are the configurations ``(N, C, Nt, Nx)`` as float32
  (channels ``[k_t, k_x, l_t, l_x]``, axis −2 time, axis −1 space; on a d-dimensional lattice
  ``(N, 2d, *shape)``, time first); targets float32 ``(N, n)``, or ``(N, C', *shape)`` for a task
  with per-site targets.
- **Batches** are drawn from whole tensors (one indexing operation per batch, no per-item Python):
  a :class:`SeededBatchSampler` yields index batches whose order depends only on
  ``(shuffle_seed, epoch)``, so training resumed from a checkpoint sees exactly the batches an
  uninterrupted run would have seen. Under DDP each rank takes its own share of every batch order.
- **Augmentation** (training split only, drawn from the same ``(shuffle_seed, epoch)`` stream as the
  batch order, so a resumed run sees the same batches):

  - ``translate=True``: every sample is shifted by its own random periodic translation (a
    ``torch.roll`` per sample); per-site targets are shifted with it, per-configuration targets are
    translation invariant. Useful for ST/FL; EQ is invariant anyway.
  - ``augment="symmetry"``: every sample is moved by its own random element of the point group of
    *exact* symmetries of the training data (:mod:`scalar_ml.physics.symmetry`; with several
    physics points the elements that are symmetries at every point, ``<P, TC>`` as soon as one has
    μ ≠ 0), restricted to the elements under which the task can transform its targets
    (:meth:`~scalar_ml.tasks.Task.transforms_targets`); the targets are transformed by the task
    (:meth:`~scalar_ml.tasks.Task.transform_targets`). ``augment=[P]`` (generator names) uses that
    subgroup and refuses, before any sampling, an element that is not an exact symmetry at every
    training point (e.g. ``T`` alone at μ ≠ 0, which flips the charge density). The element acts
    first, then the translation. ``"none"`` (default): no point-group augmentation.

Two seeds: ``seed`` fixes the *data* (ensembles, inserted worms, splits); ``shuffle_seed`` (the run's
seed) fixes the batch order and the augmentation. Retraining with several run seeds therefore
compares network instances on identical data, as in the seed paper.

Everything is validated in ``__init__`` (before any sampling): a bad value raises
:class:`~scalar_ml.config.ConfigError` naming the key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from scalar_ml.config import ConfigError, flag, integer, number_list, to_plain
from scalar_ml.data.augmentation import PointGroupAugmentation
from scalar_ml.data.cache import EnsembleRequest, load_ensemble
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.params import Lattice, PhysicsParams
from scalar_ml.physics.symmetry import SymmetryGroup, generate_group, subgroup
from scalar_ml.physics.theory import get_theory
from scalar_ml.tasks import ClosedSample, Task, get_task

__all__ = [
    "AUGMENT_MODES",
    "SPLITS",
    "Batch",
    "LatticeDataModule",
    "SeededBatchSampler",
    "TensorBatchDataset",
    "roll_per_sample",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Named values of ``augment`` (besides a list of generator names).
AUGMENT_MODES: tuple[str, ...] = ("none", "symmetry")

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
    """Periodically translate every sample of ``x`` ``(B, C, *shape)`` by its own
    ``shifts[b] = (s_0, …, s_{d-1})`` (in 2D ``(s_t, s_x)``).

    Same as ``torch.roll(x[b], shifts=tuple(shifts[b]), dims=(-d, …, -1))`` for every ``b``, in one
    gather.

    >>> x = torch.arange(2 * 1 * 3 * 2).reshape(2, 1, 3, 2)
    >>> s = torch.tensor([[1, 0], [2, 1]])
    >>> torch.equal(roll_per_sample(x, s)[1], torch.roll(x[1], (2, 1), (-2, -1)))
    True
    >>> cube = torch.arange(2 * 2 * 3 * 4 * 2).reshape(2, 2, 3, 4, 2)
    >>> s = torch.tensor([[0, 1, 1], [2, 3, 1]])
    >>> torch.equal(roll_per_sample(cube, s)[1], torch.roll(cube[1], (2, 3, 1), (-3, -2, -1)))
    True
    """
    b, c, *shape = x.shape
    dims = len(shape)
    lead = (slice(None), None)  # (B, 1, ...): broadcast over the channel axis
    index: list[torch.Tensor] = [
        torch.arange(b, device=x.device)[(slice(None),) + (None,) * (dims + 1)],
        torch.arange(c, device=x.device)[(None, slice(None)) + (None,) * dims],
    ]
    for axis, n in enumerate(shape):
        idx = (torch.arange(n, device=x.device)[None, :] - shifts[:, axis : axis + 1]) % n
        place = tuple(slice(None) if a == axis else None for a in range(dims))
        index.append(idx[lead + place])
    return x[tuple(index)]


class Batch(NamedTuple):
    """What :class:`SeededBatchSampler` yields: sample indices and optional per-sample shifts and
    point-group element indices."""

    indices: torch.Tensor
    shifts: torch.Tensor | None = None
    elements: torch.Tensor | None = None


class SeededBatchSampler(Sampler[Batch]):
    """Index batches over ``n`` samples whose order depends only on ``(seed, epoch)``.

    Args:
        n: number of samples.
        batch_size: samples per batch (``>= 1``).
        shuffle: permute the samples every epoch (else ``0, 1, …, n−1``).
        seed: seed of the permutation (and of the shifts); required when shuffling or translating.
        drop_last: drop a last, incomplete batch.
        translate: also draw a periodic shift ``(s_t, s_x)`` (one per axis) per sample, uniform
            on ``lattice``.
        lattice: the lattice shape ``(Nt, Nx)`` (``(N_0, …, N_{d-1})``), needed with ``translate``.
        n_elements: also draw a point-group element index per sample, uniform on
            ``0 … n_elements − 1`` (after the shifts, from the same stream); ``0``: none.
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
        lattice: tuple[int, ...] | None = None,
        n_elements: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
    ) -> None:
        if n < 1:
            raise ValueError(f"cannot batch an empty split (n = {n})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n_elements < 0:
            raise ValueError(f"n_elements must be >= 0, got {n_elements}")
        if (shuffle or translate or n_elements) and seed is None:
            raise ValueError("a seed is required for shuffling, translation or group elements")
        if translate and lattice is None:
            raise ValueError("translate=True needs the lattice size")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.n, self.batch_size = int(n), int(batch_size)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.translate, self.lattice = translate, lattice
        self.n_elements = int(n_elements)
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
            shifts = torch.stack(
                [torch.randint(int(n), (self.n,), generator=gen) for n in self.lattice], dim=1
            )
        elements = None
        if self.n_elements:
            elements = torch.randint(self.n_elements, (self.n,), generator=gen)
        if self.num_replicas > 1:
            positions = torch.arange(self.n)
            if self.even:
                total = math.ceil(self.n / self.num_replicas) * self.num_replicas
                positions = torch.arange(total) % self.n  # wrap around to equal shares
            positions = positions[self.rank :: self.num_replicas]
            order = order[positions]
            shifts = None if shifts is None else shifts[positions]
            elements = None if elements is None else elements[positions]
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, len(order)))
            yield Batch(
                order[sl],
                None if shifts is None else shifts[sl],
                None if elements is None else elements[sl],
            )


class TensorBatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Whole-batch access to in-memory ``inputs`` ``(N, C, *shape)`` and ``targets``.

    ``dataset[Batch(indices, shifts, elements)]`` (also via ``__getitems__``, which the DataLoader
    uses with a batch sampler) returns ``(x, y)`` for the whole batch: moved by the point-group
    elements ``elements`` when given (``augmentation`` acts on the inputs, ``task`` transforms the
    targets), then translated by ``shifts`` when given. Targets ``(N, d)`` are per configuration
    (translation invariant, never shifted); targets ``(N, C', *shape)`` with the inputs' lattice
    shape are fields on the sites and are shifted with the inputs.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        augmentation: PointGroupAugmentation | None = None,
        task: Task | None = None,
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"{inputs.shape[0]} inputs but {targets.shape[0]} targets")
        if (augmentation is None) != (task is None):
            raise ValueError("point-group augmentation needs both the augmentation and the task")
        self.inputs, self.targets = inputs, targets
        self.augmentation, self.task = augmentation, task

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, key: Batch | int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(key, Batch):
            x, y = self.inputs[key.indices], self.targets[key.indices]
            if key.elements is not None:
                if self.augmentation is None:
                    raise ValueError(
                        "a batch with group elements needs a dataset with augmentation"
                    )
                x = self.augmentation.apply(x, key.elements)
                y = self.augmentation.apply_targets(self.task, y, key.elements)
            if key.shifts is not None:
                x = roll_per_sample(x, key.shifts)
                if y.ndim == x.ndim:
                    y = roll_per_sample(y, key.shifts)
            return x, y
        return self.inputs[key], self.targets[key]

    def __getitems__(self, keys: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(keys, Batch):
            return self[keys]
        return self[Batch(torch.as_tensor(keys, dtype=torch.long))]


def _whole_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """collate_fn for :class:`TensorBatchDataset`: batches arrive already stacked."""
    return batch


# -- data points ----------------------------------------------------------------------------------------
def _named_points(points: Any) -> dict[str, PhysicsParams]:
    """``{name: point}`` or a list of points (named ``p0, p1, …``), validated by the theory."""
    theory = get_theory()
    points = to_plain(points)
    if isinstance(points, Mapping):
        items = [(str(k), v) for k, v in points.items()]
    elif isinstance(points, Sequence) and not isinstance(points, str):
        items = [(f"p{i}", v) for i, v in enumerate(points)]
    else:
        raise ConfigError(f"data.points must be a mapping or a list of points, got {points!r}")
    if not items:
        raise ConfigError("data.points must not be empty")
    out = {name: theory.params(value, key=f"data.points.{name}") for name, value in items}
    if len(set(out.values())) != len(out):
        raise ConfigError(
            f"data.points must be distinct, got {[theory.values(p) for p in out.values()]}"
        )
    return out


def _scan_points(base: Any, values: Any) -> dict[str, PhysicsParams]:
    """One point per value of the theory's scan parameter (μ), the others from ``base``.

    Points are named ``<parameter><value:g>`` (``mu0.91``); ``values = None`` uses the base point alone.
    """
    theory = get_theory()
    scan = theory.scan_parameter
    base_params = theory.params(base, key="data.physics")
    raw = to_plain(values)
    scan_values = [theory.values(base_params)[scan]] if raw is None else raw
    numbers_ = number_list(f"data.{scan}_values", scan_values, distinct=False)
    out: dict[str, PhysicsParams] = {}
    for value in numbers_:
        params = theory.params(
            theory.replace(base_params, **{scan: value}), key=f"data.{scan}_values ({value!r})"
        )
        name = f"{scan}{value:g}"
        if name in out:
            raise ConfigError(f"data.{scan}_values must not repeat values, got {numbers_}")
        out[name] = params
    return out


@dataclass(frozen=True)
class _SplitData:
    inputs: torch.Tensor  # (N, C, *shape) float32
    targets: torch.Tensor  # (N, n) or (N, C', *shape) float32
    point: torch.Tensor  # (N,) int64: index into the module's points
    worms: torch.Tensor  # (N,) int64: inserted open worms (0 without)


class LatticeDataModule(L.LightningDataModule):
    """Training data of any task (see the module docstring), on in-memory tensors.

    Args:
        task: the task (a name of :func:`scalar_ml.tasks.task_names` or a Task); it makes the
            examples and labels.
        lattice: the training lattice ``{nt, nx}``, ``{shape: [...]}``, ``"8x8x8"`` or a Lattice.
        points: physics points ``{name: {eta, lam, mu}}`` (or a list, named ``p0, p1, …``) ...
        physics: ... or the base point of a scan of the theory's scan parameter (μ), whose values
            come as the keyword ``mu_values`` (one ensemble each, named ``mu<value>``; ``None`` or
            absent: ``physics`` alone).
        worms: worm counts (tasks that insert open worms; their task decides how they are spread
            over the configurations); ``None``: ``[0]``, i.e. closed configurations.
        max_worm_length: nominal maximal worm length (default ``Nt + Nx``).
        n_train, n_val, n_test: configurations *per physics point* in each split (``n_val >= 1``).
        batch_size: training batch size (``>= 1``).
        eval_batch_size: validation/test batch size (default: ``max(batch_size, 1024)``).
        seed: the data seed (Monte Carlo ensembles, inserted worms, splits).
        shuffle_seed: the run seed (batch order, augmentation); default ``seed``.
        translate: random periodic translation of every training sample (site targets move along).
        augment: ``"none"``, ``"symmetry"`` (a random exact point symmetry of the training data per
            training sample, targets transformed by the task) or a list of generator names (that
            subgroup; refused unless every element is an exact symmetry at every point).
        drop_last: drop the last incomplete training batch.
        cache_dir: ensemble cache directory (default ``scalar_ml.paths.default_data_dir()``).
        sampler: options of the sampler (``n_chains``, ``n_therm``, ``sweeps_between``,
            ``progress``) for ensembles that are not cached yet.
        pin_memory: pin batches (for GPU training).
    """

    def __init__(
        self,
        *,
        task: str | Task,
        lattice: Mapping[str, int] | Lattice,
        n_train: int,
        n_val: int,
        n_test: int,
        batch_size: int,
        points: Any = None,
        physics: Any = None,
        worms: Sequence[int] | int | None = None,
        max_worm_length: int | None = None,
        eval_batch_size: int | None = None,
        seed: int = 0,
        shuffle_seed: int | None = None,
        translate: bool = False,
        augment: str | Sequence[str] = "none",
        drop_last: bool = False,
        cache_dir: str | None = None,
        sampler: Mapping[str, Any] | None = None,
        pin_memory: bool = False,
        **scan: Any,
    ) -> None:
        super().__init__()
        scan_key = f"{get_theory().scan_parameter}_values"
        unknown = sorted(set(scan) - {scan_key})
        if unknown:
            raise ConfigError(f"data: unknown option(s) {unknown}")
        scan_values = scan.get(scan_key)
        self.task = get_task(task)
        self.lattice = get_theory().lattice(to_plain(lattice), key="lattice")
        self.n_train = integer("data.n_train", n_train, minimum=1)
        self.n_val = integer("data.n_val", n_val, minimum=1)
        self.n_test = integer("data.n_test", n_test, minimum=0)
        self.batch_size = integer("data.batch_size", batch_size, minimum=1)
        self.eval_batch_size = (
            max(self.batch_size, 1024)
            if eval_batch_size is None
            else integer("data.eval_batch_size", eval_batch_size, minimum=1)
        )
        self.seed = integer("data.seed", seed, minimum=0)
        self.shuffle_seed = (
            self.seed
            if shuffle_seed is None
            else integer("data.shuffle_seed", shuffle_seed, minimum=0)
        )
        self.translate = flag("data.translate", translate)
        self.drop_last = flag("data.drop_last", drop_last)
        self.pin_memory = flag("data.pin_memory", pin_memory)
        if (points is None) == (physics is None):
            raise ConfigError(
                "data: give either points (named physics points) or physics (+ the scan values)"
            )
        if points is not None and scan_values is not None:
            raise ConfigError(
                f"data: {scan_key} belongs to a scan (data.physics), not to data.points"
            )
        self._points = (
            _named_points(points) if points is not None else _scan_points(physics, scan_values)
        )
        self.worms = list(
            self.task.check_worms(
                "data.worms", [0] if worms is None else to_plain(worms), [self.lattice]
            )
        )
        self.max_worm_length = integer(
            "data.max_worm_length", max_worm_length, minimum=1, optional=True
        )
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.sampler_options: dict[str, Any] = dict(to_plain(sampler) or {})
        self._splits: dict[str, _SplitData] | None = None
        self._validate_requests()
        self.augment_group = self._augment_group(augment)
        self.augmentation = (
            None
            if self.augment_group is None
            else PointGroupAugmentation(self.augment_group, self.lattice.shape)
        )
        if self.augment_group is not None:
            log.info("point-group augmentation: %s", self.augment_group.names)

    @property
    def points(self) -> dict[str, PhysicsParams]:
        """The physics points, by name, in a fixed order (``point`` indices refer to it)."""
        return self._points

    @property
    def target_names(self) -> tuple[str, ...]:
        """The task's target names (the order of the network outputs)."""
        return self.task.targets

    @property
    def n_configs(self) -> int:
        """Configurations drawn per physics point (``n_train + n_val + n_test``)."""
        return self.n_train + self.n_val + self.n_test

    def _augment_group(self, augment: Any) -> SymmetryGroup | None:
        """The point group of ``augment`` (``None`` for ``"none"``), checked against the training
        points (exact symmetries only) and the task (targets it can transform)."""
        theory = get_theory()
        value = to_plain(augment)
        if isinstance(value, str) and value == "none":
            return None  # no group needed (none exists yet beyond 2D)
        points = list(self.points.values())
        exact = theory.symmetry_group(points, self.lattice)
        if isinstance(value, str) and value in AUGMENT_MODES:
            group = subgroup(g for g in exact if self.task.transforms_targets(g))
            if len(group) == 1:
                raise ConfigError(
                    f"data.augment=symmetry: task {self.task.name} transforms its targets under no "
                    f"element of the training data's symmetry group {exact} besides the identity"
                )
            return group
        if (
            not isinstance(value, Sequence)
            or isinstance(value, str)
            or not value
            or not all(isinstance(v, str) for v in value)
        ):
            raise ConfigError(
                f"data.augment must be one of {', '.join(AUGMENT_MODES)} or a non-empty list of "
                f"generator names such as [P, TC], got {value!r}"
            )
        try:
            group = generate_group(value)
        except ValueError as exc:
            raise ConfigError(f"data.augment: {exc}") from exc
        for g in group:
            reason = theory.symmetry_refusal(g, points, self.lattice)
            if reason is not None:
                raise ConfigError(
                    f"data.augment={list(value)}: {g.name} is not an exact symmetry of the training "
                    f"data ({reason}); the exact symmetries at every training point are {exact} = "
                    f"{{{', '.join(exact.names)}}}"
                )
            if not self.task.transforms_targets(g):
                raise ConfigError(
                    f"data.augment={list(value)}: task {self.task.name} cannot transform its "
                    f"targets under {g.name}"
                )
        return group

    def _validate_requests(self) -> None:
        """Check every ensemble request (and the sampler options) without touching the disk."""
        for name, params in self.points.items():
            try:
                EnsembleRequest.create(
                    params, self.lattice, self.n_configs, self.seed, **self.sampler_options
                )
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"data point {name!r}: {exc}") from exc

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

    def _make_split(
        self,
        point_index: int,
        params: PhysicsParams,
        ensemble: Ensemble,
        rows: np.ndarray,
        split: str,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(inputs, targets, worm counts)`` of one point's split, made by the task."""
        theory = get_theory()
        sample = ClosedSample(
            configs=ensemble.configs[rows],
            params=params,
            observables={n: theory.series(ensemble, n)[rows] for n in theory.observable_names},
        )
        rng = _stream(self.seed, _WORM_STREAM, point_index, SPLITS.index(split))
        counts = self.task.training_counts(rng, len(rows), self.worms)
        inputs, targets = self.task.make_examples(
            sample, counts, rng, max_worm_length=self.max_worm_length
        )
        return inputs, targets, counts

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
                parts[split].append((*self._make_split(i, params, ens, rows, split), i))
        splits = {}
        for split in SPLITS:
            if not parts[split]:
                continue
            configs = np.concatenate([p[0] for p in parts[split]])
            targets = np.concatenate([p[1] for p in parts[split]])
            worms = np.concatenate([p[2] for p in parts[split]])
            point = np.concatenate([np.full(len(p[0]), p[3]) for p in parts[split]])
            if targets.ndim == 1:
                targets = targets[:, None]
            splits[split] = _SplitData(
                inputs=torch.from_numpy(configs.astype(np.float32)),
                targets=torch.from_numpy(targets.astype(np.float32)),
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
        augment = self.augmentation is not None and shuffle
        sampler = SeededBatchSampler(
            len(data.inputs),
            self.batch_size if train else self.eval_batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            drop_last=self.drop_last if train else False,
            translate=self.translate and shuffle,
            lattice=self.lattice.shape,
            n_elements=len(self.augmentation) if augment and self.augmentation else 0,
            num_replicas=replicas,
            rank=rank,
            even=train,
        )
        return DataLoader(
            TensorBatchDataset(
                data.inputs,
                data.targets,
                augmentation=self.augmentation if augment else None,
                task=self.task if augment else None,
            ),
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
        theory = get_theory()
        out: dict[str, Any] = {
            "task": self.task.name,
            "targets": list(self.target_names),
            "lattice": self.lattice.as_dict(),
            "points": {k: theory.values(v) for k, v in self.points.items()},
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "seed": self.seed,
            "translate": self.translate,
            "augment": None if self.augment_group is None else list(self.augment_group.names),
        }
        if self.task.inserts_worms:
            out.update(max_worm_length=self.max_worm_length, worms=list(self.worms))
        return out
