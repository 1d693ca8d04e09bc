r"""What a task is: the one object that declares everything task-specific.

A :class:`Task` says, for one learning problem on lattice configurations:

- **targets**: their names and shape: one vector per configuration (``per_site = False``, targets
  ``(N, d)``) or a field on the lattice sites (``per_site = True``, targets ``(N, C, Nt, Nx)``, on a
  lattice of any dimension ``(N, C, *shape)``);
- **how examples are made** from closed Monte Carlo configurations (:meth:`Task.make_examples`):
  which configurations get open worms (:meth:`Task.training_counts` for training data,
  :meth:`Task.cell_counts` for one cell of an evaluation grid), and the labels, always recomputed from
  the configurations themselves and checked against the intent;
- **how the targets transform** under a point symmetry of the lattice (:meth:`Task.transform_targets`,
  :meth:`Task.transforms_targets`): invariant by default (per-configuration targets), a moved site
  field for per-site targets; the data module's ``augment`` option labels transformed training
  configurations with it;
- **the network's head** (:meth:`Task.head`): the number of outputs and the final activation of its
  presets and searched networks (a sigmoid for probabilities);
- **the loss** (:meth:`Task.loss`, and per configuration :meth:`Task.sample_loss`), on the logits
  when ``loss_on_logits`` (binary cross entropy), and the prediction made from the raw output;
- **metrics** (:attr:`Task.metrics`): each one definition, used for training-time logging
  (``val/<name>``, ``test/<name>``; accumulated with torchmetrics' ``SumMetric``) and for evaluation
  cells (value and standard error), so the two can never disagree;
- **its default recipe** (``conf/task/<name>.yaml``: data, lattice, presets per family, optimiser),
  **its test grid** (``conf/grid/<grid>.yaml``) and **its figures** (:meth:`Task.figures`).

The data modules, the LightningModule, the search space, evaluation, plots and the reproduction
page look a task up by name (:func:`scalar_ml.tasks.get_task`) and ask it; none of them names a task.

**Metrics.** A :class:`Metric` maps the outputs of a batch or cell (:class:`Outputs`: prediction,
raw output, target, per-configuration loss) to per-configuration values, and says how they
aggregate:

- ``mean``: :math:`\bar v = \frac1N\sum_i v_i`, standard error :math:`s_v/\sqrt N`;
- ``fraction``: a mean of 0/1 values, standard error :math:`\sqrt{p(1-p)/N}`;
- ``ratio``: :math:`R = \sum_i a_i / \sum_i b_i` from per-configuration pairs ``(a_i, b_i)`` (e.g.
  precision = true positives / predicted positives), standard error by linearisation,
  :math:`\sqrt{N/(N-1)\,\sum_i (a_i - R b_i)^2} / \sum_i b_i`;
- ``spread``: the standard deviation :math:`s_v` of the values (no standard error).

Standard errors treat the configurations of a cell as independent (the sampler stores them
``>= 2 τ_int`` sweeps apart).

>>> import torch
>>> out = Outputs(pred=torch.tensor([[0.9], [0.2], [0.7]]), raw=torch.zeros(3, 1),
...               target=torch.tensor([[1.0], [0.0], [0.0]]), loss=torch.zeros(3))
>>> acc = Metric("acc", "fraction", lambda o: ((o.pred >= 0.5) == (o.target >= 0.5)).double()[:, 0])
>>> value, stderr = acc.evaluate(out)
>>> round(value, 4), round(stderr, 4)
(0.6667, 0.2722)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import numpy as np

from scalar_ml.config import ConfigError, integer_list

if TYPE_CHECKING:
    import torch

    from scalar_ml.evaluation.plots import Figure
    from scalar_ml.physics.params import Lattice, PhysicsParams
    from scalar_ml.physics.symmetry import LatticeSymmetry

__all__ = ["ClosedSample", "Metric", "Outputs", "Task"]

MetricKind = Literal["mean", "fraction", "ratio", "spread"]


class Outputs(NamedTuple):
    """What metrics see for a batch or a cell (torch tensors, first axis = configurations).

    ``pred`` is the prediction (probabilities for a loss on logits), ``raw`` what the loss sees,
    ``target`` the labels, ``loss`` the per-configuration loss ``(N,)``.
    """

    pred: torch.Tensor
    raw: torch.Tensor
    target: torch.Tensor
    loss: torch.Tensor


class ClosedSample(NamedTuple):
    """Closed configurations ``(N, C, Nt, Nx)`` (``(N, 2d, *shape)`` on a d-dimensional lattice) of
    one physics point with their stored observables."""

    configs: np.ndarray
    params: PhysicsParams
    observables: dict[str, np.ndarray]


@dataclass(frozen=True)
class Metric:
    """One metric of a task (see the module docstring for the kinds and their standard errors).

    ``values`` maps :class:`Outputs` to per-configuration values ``(N,)`` (``ratio``: a pair
    ``(a, b)`` of such tensors). ``training`` metrics are also logged while training.
    """

    name: str
    kind: MetricKind
    values: Callable[[Outputs], Any]
    training: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "fraction", "ratio", "spread"):
            raise ValueError(f"metric {self.name!r}: unknown kind {self.kind!r}")

    def sums(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Σ a, Σ b)`` over the batch: the value is their ratio (``b = 1`` for means)."""
        import torch

        v = self.values(outputs)
        if self.kind == "ratio":
            a, b = v
            return a.sum(), b.sum()
        return v.sum(), torch.tensor(float(v.shape[0]), dtype=v.dtype, device=v.device)

    def evaluate(self, outputs: Outputs) -> tuple[float, float]:
        """``(value, standard error)`` over the configurations of ``outputs`` (NaN where undefined)."""
        if self.kind == "ratio":
            a, b = (np.asarray(t.detach().double().cpu().numpy()) for t in self.values(outputs))
            n, total = a.size, float(b.sum())
            if n == 0 or total == 0:
                return math.nan, math.nan
            r = float(a.sum()) / total
            se = (
                math.sqrt(n / (n - 1) * float(((a - r * b) ** 2).sum())) / total
                if n > 1
                else math.nan
            )
            return r, se
        v = np.asarray(self.values(outputs).detach().double().cpu().numpy())
        n = v.size
        if n == 0:
            return math.nan, math.nan
        if self.kind == "spread":
            return (float(v.std(ddof=1)) if n > 1 else math.nan), math.nan
        mean = float(v.mean())
        if self.kind == "fraction":
            return mean, math.sqrt(mean * (1.0 - mean) / n)
        return mean, (float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan)


class Task:
    """A learning task on lattice configurations (see the module docstring).

    Subclasses set the class attributes and implement :meth:`make_examples`; the defaults below
    describe a regression of per-configuration targets on closed configurations.
    """

    #: Registry key: ``task=<name>``, ``conf/task/<name>.yaml``, preset folder ``conf/presets/<name>/``.
    name: ClassVar[str] = ""
    #: Position in listings (the seed's task numbers first).
    order: ClassVar[int] = 100
    #: One line for tables and figures.
    title: ClassVar[str] = ""
    #: Names of the outputs (per configuration) or of the output channels (per site).
    targets: ClassVar[tuple[str, ...]] = ()
    #: Targets and outputs are fields on the lattice sites ``(N, C, Nt, Nx)``.
    per_site: ClassVar[bool] = False
    #: Final activation of the task's networks (presets, searched networks), e.g. ``"sigmoid"``.
    head_activation: ClassVar[str | None] = None
    #: Binary cross entropy on the logits (the network's output before a final sigmoid).
    loss_on_logits: ClassVar[bool] = False
    #: Open worms are inserted (flux violations); ``False``: closed configurations only.
    inserts_worms: ClassVar[bool] = False
    #: Smallest worm count of the lists ``data.worms`` and ``grid.worms``.
    min_worms: ClassVar[int] = 0
    #: Smallest number of configurations per evaluation cell.
    min_cell_configs: ClassVar[int] = 1
    #: The default evaluation grid (``conf/grid/<grid>.yaml``); empty: the task's name.
    grid: ClassVar[str] = ""
    #: Metrics besides the loss, in the order of the evaluation table.
    metrics: ClassVar[tuple[Metric, ...]] = ()

    # -- identity -----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """A task pickles as its registry lookup (its metrics hold lambdas; spawned DDP workers and
        data-loader processes look the same task up again)."""
        from scalar_ml.tasks import get_task

        return get_task, (self.name,)

    @property
    def grid_name(self) -> str:
        """The default evaluation grid's config name."""
        return self.grid or self.name

    @property
    def n_outputs(self) -> int:
        """Outputs per configuration, or output channels per site."""
        return len(self.targets)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """``("loss", *metrics)``: every metric of an evaluation cell, in table order."""
        return ("loss", *(m.name for m in self.metrics))

    def evaluation_metrics(self) -> tuple[Metric, ...]:
        """The loss (mean per-configuration loss) followed by :attr:`metrics`."""
        return (Metric("loss", "mean", lambda o: o.loss), *self.metrics)

    def training_metrics(self) -> tuple[Metric, ...]:
        """The metrics logged during training (besides the loss)."""
        return tuple(m for m in self.metrics if m.training)

    def head(self) -> Any:
        """What the network's output must look like: a :class:`scalar_ml.models.Head`."""
        from scalar_ml.models.head import Head

        return Head(outputs=self.n_outputs, activation=self.head_activation, per_site=self.per_site)

    # -- data -----------------------------------------------------------------------------------------
    def check_worms(self, key: str, worms: Any, lattices: Sequence[Lattice]) -> tuple[int, ...]:
        """Validate a list of worm counts for this task on every lattice (``ConfigError`` naming ``key``)."""
        from scalar_ml.data.violations import check_worms_fit

        if not self.inserts_worms:
            values = integer_list(key, worms, minimum=0)
            if values != [0]:
                raise ConfigError(f"{key}: task {self.name} takes no worms ([0]), got {values}")
            return (0,)
        values = integer_list(key, worms, minimum=self.min_worms)
        for lat in lattices:
            try:
                check_worms_fit(values, *lat.shape)
            except ValueError as exc:
                raise ConfigError(f"{key} on {lat}: {exc}") from exc
        return tuple(values)

    def training_counts(self, rng: np.random.Generator, n: int, worms: Sequence[int]) -> np.ndarray:
        """Worm counts ``(n,)`` of ``n`` training configurations drawn from the values ``worms``."""
        return np.zeros(n, dtype=np.int64)

    def cell_counts(self, rng: np.random.Generator, n: int, worms: int) -> np.ndarray:
        """Worm counts ``(n,)`` of the configurations of one evaluation cell with ``worms`` worms."""
        return np.zeros(n, dtype=np.int64)

    def make_examples(
        self,
        sample: ClosedSample,
        counts: np.ndarray,
        rng: np.random.Generator,
        *,
        max_worm_length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, targets)`` from closed configurations: worms inserted per ``counts``, labels
        recomputed from the result and checked (a mismatch raises ``RuntimeError``)."""
        raise NotImplementedError(f"task {self.name!r} does not implement make_examples")

    # -- point symmetries -----------------------------------------------------------------------------
    def transforms_targets(self, element: LatticeSymmetry) -> bool:
        """Whether the targets of ``element·x`` follow from the targets of ``x`` alone, i.e. whether
        :meth:`transform_targets` is defined for ``element``.

        Default: every element for per-configuration targets (invariant, see
        :meth:`transform_targets`); none for per-site targets, so that a per-site task says how its
        fields move before its data can be augmented.
        """
        return not self.per_site

    def transform_targets(self, element: LatticeSymmetry, targets: Any) -> Any:
        """The targets of the transformed configurations ``element·x`` from the targets of ``x``.

        ``targets`` is ``(N, d)`` or ``(N, C, Nt, Nx)`` (numpy or torch), every row transformed by
        the same ``element`` (a point symmetry, :mod:`scalar_ml.physics.symmetry`); the result is
        a new array of the same kind. Augmented training data (``data.augment``) are labelled with
        it, so it must equal the labels recomputed from ``element·x`` (``tests/tasks`` checks it on
        configurations for every element :meth:`transforms_targets` admits).

        Default: invariant (the targets are returned as a copy), the rule for per-configuration
        targets such as a worm count; a ``ValueError`` for elements :meth:`transforms_targets`
        refuses.
        """
        self._check_transforms(element)
        return targets * 1  # a new array (numpy or torch), unchanged values

    def _check_transforms(self, element: LatticeSymmetry) -> None:
        if not self.transforms_targets(element):
            raise ValueError(
                f"task {self.name}: the targets {list(self.targets)} of {element.name}·x do not "
                f"follow from those of x (no target transformation for {element.name})"
            )

    # -- learning -------------------------------------------------------------------------------------
    def raw_output(self, net: Any, x: torch.Tensor) -> torch.Tensor:
        """What the loss sees: the logits (before a final sigmoid) when ``loss_on_logits``."""
        if self.loss_on_logits and net.ends_with_sigmoid:
            return net.logits(x)
        return net(x)

    def prediction(self, raw: torch.Tensor) -> torch.Tensor:
        """The prediction from the raw output: probabilities for a loss on logits."""
        import torch

        return torch.sigmoid(raw) if self.loss_on_logits else raw

    def loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch (a scalar): MSE, or BCE on the logits."""
        import torch.nn.functional as F

        if self.loss_on_logits:
            return F.binary_cross_entropy_with_logits(raw, target)
        return F.mse_loss(raw, target)

    def sample_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of each configuration ``(N,)`` (its mean over a batch is :meth:`loss`)."""
        import torch.nn.functional as F

        if self.loss_on_logits:
            per = F.binary_cross_entropy_with_logits(raw, target, reduction="none")
        else:
            per = F.mse_loss(raw, target, reduction="none")
        return per.reshape(per.shape[0], -1).mean(dim=1)

    def outputs(self, net: Any, x: torch.Tensor, target: torch.Tensor) -> Outputs:
        """:class:`Outputs` of ``net`` on a batch (no reduction): what metrics are computed from."""
        raw = self.raw_output(net, x)
        return Outputs(self.prediction(raw), raw, target, self.sample_loss(raw, target))

    # -- evaluation -----------------------------------------------------------------------------------
    def figures(self) -> tuple[Callable[..., list[Figure]], ...]:
        """Figure functions ``fn(table, task) -> [Figure]`` of an evaluation of this task."""
        from scalar_ml.evaluation import plots

        return (plots.loss_vs_size, plots.loss_maps)

    def example_figures(
        self, inputs: np.ndarray, targets: np.ndarray, pred: np.ndarray, *, label: str, stem: str
    ) -> list[Figure]:
        """Figures of single examples of one evaluation cell (default: none).

        The evaluation calls this per checkpoint for the grid's first and last lattice, with the
        configurations, targets and predictions of the cell with the grid's first physics point and
        its largest worm count; ``label`` describes checkpoint and cell, ``stem`` is the file stem.
        """
        return []
