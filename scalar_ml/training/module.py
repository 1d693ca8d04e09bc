r"""The LightningModule of every task: a :class:`~scalar_ml.models.LatticeNet` plus its task's loss and metrics.

The task (:func:`scalar_ml.tasks.get_task`) supplies everything task-specific: the loss (MSE, or
binary cross entropy on the logits, in which case presets ending in a sigmoid are trained through
their :meth:`~scalar_ml.models.LatticeNet.logits` and ``forward`` still returns probabilities), the
prediction made from the raw output, the head the network must end in, and the metrics.

Metrics, logged per split (``train``, ``val``, ``test``) as ``<split>/<name>``:

- ``loss`` (the training loss, averaged over the whole split for val/test);
- the task's training metrics (:meth:`~scalar_ml.tasks.Task.training_metrics`, e.g. ``mse_n`` and
  ``mse_phi2`` for observables, ``acc`` for detection and counting), accumulated over the split with
  torchmetrics' ``SumMetric`` (DDP-synchronised);
- ``val/loss_best``: the lowest ``val/loss`` so far (kept in checkpoints, so it survives a resume).

A non-finite training loss raises :class:`DivergedError` at the step where it happens.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MinMetric, SumMetric

from scalar_ml.models import build_model, count_parameters, preset_spec
from scalar_ml.models.spec import to_plain
from scalar_ml.tasks import Task, get_task

__all__ = ["DivergedError", "LatticeModule"]

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class DivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class _SplitMetrics(nn.Module):
    """Epoch-level metrics of one evaluation split (val or test): the loss and the task's metrics."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task  # pickles as its registry lookup (spawned DDP workers); its metrics do not
        self.loss = MeanMetric()
        self.numerators = nn.ModuleList(SumMetric() for _ in self.definitions)
        self.denominators = nn.ModuleList(SumMetric() for _ in self.definitions)

    @property
    def definitions(self) -> tuple[Any, ...]:
        """The task's training metrics, in logging order."""
        return self.task.training_metrics()

    def update(self, loss: torch.Tensor, outputs: Any) -> None:
        self.loss.update(loss.detach(), weight=outputs.target.shape[0])
        for metric, num, den in zip(
            self.definitions, self.numerators, self.denominators, strict=True
        ):
            a, b = metric.sums(outputs)
            num.update(a.detach())
            den.update(b.detach())

    def compute(self, split: str) -> dict[str, torch.Tensor]:
        out = {f"{split}/loss": self.loss.compute()}
        for metric, num, den in zip(
            self.definitions, self.numerators, self.denominators, strict=True
        ):
            out[f"{split}/{metric.name}"] = num.compute() / den.compute()
        return out

    def reset(self) -> None:
        for metric in self.modules():
            if metric is not self and hasattr(metric, "reset"):
                metric.reset()


class LatticeModule(L.LightningModule):
    """Train a lattice network on one task.

    The network comes from exactly one of: ``spec`` (a full model spec, e.g. a checkpoint's
    ``hparams.spec``), ``preset`` (a name such as ``"counting/eq_1"``) or ``layers`` (a hand-written
    layer list with ``family`` and, for fl, ``input_size``). With ``spec`` given, ``preset`` is only
    a label.

    Args:
        task: a task name (:func:`scalar_ml.tasks.task_names`).
        preset: preset name (``scalar_ml.models.list_presets()``).
        family: ``eq``, ``st`` or ``fl`` (with ``layers``).
        layers: layer specs (see :mod:`scalar_ml.models.spec`).
        input_size: ``[nt, nx]`` for an fl network built from ``layers``.
        dims: the lattice dimension d of the network (``None``: 2, or that of ``spec``); a 2D
            preset is lifted to d dimensions (:func:`scalar_ml.models.presets.lift_spec`), hand-written
            ``layers`` are read as d-dimensional.
        spec: a complete model spec.
        optimizer: a factory ``params -> Optimizer`` (Hydra ``_partial_: true``); default Adam(1e-3).
        scheduler: a factory ``optimizer -> LR scheduler`` or ``None``.
        scheduler_monitor: metric watched by metric-driven schedulers (ReduceLROnPlateau).
        scheduler_interval: ``"epoch"`` or ``"step"``.
    """

    def __init__(
        self,
        task: str,
        preset: str | None = None,
        family: str | None = None,
        layers: Sequence[Mapping[str, Any]] | None = None,
        input_size: Sequence[int] | None = None,
        spec: Mapping[str, Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        scheduler_interval: str = "epoch",
        dims: int | None = None,
    ) -> None:
        super().__init__()
        self.task = get_task(task)
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        self.target_names = self.task.targets
        self.net = build_model(
            self._resolve_spec(
                preset, family, layers, input_size, spec, self.task.head().output, dims
            )
        )
        self._check_head(preset)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_monitor = scheduler_monitor
        self.scheduler_interval = scheduler_interval
        # Plain values only: checkpoints stay loadable with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "task": self.task.name,
                "preset": preset,
                "spec": to_plain(self.net.spec),
                "scheduler_monitor": scheduler_monitor,
                "scheduler_interval": scheduler_interval,
                "n_parameters": count_parameters(self.net),
            },
            logger=False,
        )
        self._train_loss_sum: torch.Tensor | None = None
        self._train_count = 0
        self.val_metrics = _SplitMetrics(self.task)
        self.test_metrics = _SplitMetrics(self.task)
        self.val_loss_best = MinMetric()
        self.val_loss_best.persistent(True)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets ``_current_fx_name`` (a plain str/None attribute) around every hook call,
        # ~40 times per training step; the generic nn.Module.__setattr__ (Parameter/Module/buffer
        # checks) costs a few µs each, a noticeable share of a step of these small networks.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def _check_head(self, preset: str | None) -> None:
        """The network's output must be what the task needs (its number of outputs, per site or not)."""
        head = self.task.head()
        if self.net.out_features != head.outputs or self.net.output != head.output:
            label = preset or "the custom network"
            what = f"output(s) per {self.net.output}"
            raise ValueError(
                f"{label} has {self.net.out_features} {what} but task {self.task.name!r} needs "
                f"{head.describe()} ({', '.join(self.target_names)}); choose a "
                f"{self.task.name}/... preset or end the layers accordingly"
            )

    @staticmethod
    def _resolve_spec(
        preset: str | None,
        family: str | None,
        layers: Sequence[Mapping[str, Any]] | None,
        input_size: Sequence[int] | None,
        spec: Mapping[str, Any] | None,
        output: str,
        dims: int | None = None,
    ) -> dict[str, Any]:
        if spec is not None:
            if layers is not None:
                raise ValueError("give either spec or layers, not both")
            out = dict(to_plain(spec))
            if dims is not None and dims != out.get("dims", 2):
                raise ValueError(
                    f"the spec is for {out.get('dims', 2)}-dimensional lattices, not {dims}"
                )
            return out
        if preset is not None and layers is not None:
            raise ValueError(
                f"give either preset ({preset!r}) or layers, not both (model=custom sets preset: null)"
            )
        if preset is not None:
            try:
                return preset_spec(preset, dims=dims)
            except (FileNotFoundError, KeyError, ValueError) as exc:
                from scalar_ml.models import list_presets

                raise ValueError(
                    f"unknown preset {preset!r} ({exc}); valid presets: {', '.join(list_presets())}"
                ) from exc
        if layers is None:
            raise ValueError(
                "no network given: set model.preset, or model=custom with model.layers"
            )
        if family is None:
            raise ValueError("model.family (eq, st or fl) is required with model.layers")
        # a hand-written layer list returns what the task needs (per configuration or per site)
        out: dict[str, Any] = {"family": family, "layers": to_plain(layers), "output": output}
        if dims is not None and dims != 2:
            out["dims"] = dims
        if input_size is not None:
            out["input_size"] = list(to_plain(input_size))
        return out

    # -- forward / loss ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output (probabilities for a task with a loss on logits)."""
        return self.net(x)

    def _loss_and_outputs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The batch loss and the :class:`~scalar_ml.tasks.Outputs` metrics are computed from."""
        from scalar_ml.tasks import Outputs

        raw = self.task.raw_output(self.net, x)
        loss = self.task.loss(raw, y)
        return loss, Outputs(self.task.prediction(raw), raw, y, self.task.sample_loss(raw, y))

    # -- steps ---------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._train_loss_sum = None
        self._train_count = 0

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        raw = self.task.raw_output(self.net, x)
        loss = self.task.loss(raw, y)
        value = loss.detach()
        n = y.shape[0]
        # The epoch mean is accumulated here rather than with self.log on every step: Lightning's
        # per-call logging costs ~0.5 ms, as much as a whole step of the small networks.
        weighted = value * n
        self._train_loss_sum = (
            weighted if self._train_loss_sum is None else self._train_loss_sum + weighted
        )
        self._train_count += n
        every = max(int(self._trainer.log_every_n_steps), 1) if self._trainer is not None else 50
        due = (batch_idx + 1) % every == 0
        # CPU: check every step (cheap); accelerators: at logging steps only (a check synchronises).
        if value.device.type == "cpu" or due:
            self._check_finite(
                value if value.device.type == "cpu" else self._train_loss_sum, batch_idx
            )
        if due:
            self.log("train/loss_step", value, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _check_finite(self, value: torch.Tensor, batch_idx: int) -> None:
        if not bool(torch.isfinite(value)):
            raise DivergedError(
                f"the training loss became {value.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step} (batch {batch_idx}); lower the learning rate "
                f"(model.optimizer.lr) or check the data"
            )

    def on_train_epoch_end(self) -> None:
        if self._train_count:
            assert self._train_loss_sum is not None
            mean = self._train_loss_sum / self._train_count
            self._check_finite(mean, -1)
            self.log("train/loss", mean, prog_bar=True, sync_dist=True)

    def _eval_step(self, metrics: _SplitMetrics, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        loss, outputs = self._loss_and_outputs(x, y)
        metrics.update(loss, outputs)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(self.val_metrics, batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(self.test_metrics, batch)

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute("val")
        self.val_metrics.reset()
        loss = values["val/loss"]
        if not math.isfinite(float(loss)):
            raise DivergedError(
                f"the validation loss is {float(loss)} at epoch {self.current_epoch}"
            )
        if not self.trainer.sanity_checking:
            self.val_loss_best.update(loss)
            values["val/loss_best"] = self.val_loss_best.compute()
        self.log("val/loss", values.pop("val/loss"), prog_bar=True)
        self.log_dict(values)

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def on_test_epoch_end(self) -> None:
        values = self.test_metrics.compute("test")
        self.test_metrics.reset()
        self.log_dict(values)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        return self(x)

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        params = self.net.parameters()
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(params, lr=1e-3)
        else:
            optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.scheduler_monitor,
                "interval": self.scheduler_interval,
                "frequency": 1,
            },
        }
