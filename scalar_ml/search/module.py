"""The ``_target_`` of ``conf/model/searchable.yaml``: a LatticeModule built from a flat ``arch`` point.

Hydra instantiates :func:`searchable_module` with the sampled ``model.arch`` (see
:mod:`scalar_ml.search.space`); it checks the point on the training lattice first, so an invalid
sample fails in milliseconds with :class:`~scalar_ml.search.space.InvalidArchitectureError`, before
any data are sampled or loaded. The module it returns is an ordinary
:class:`~scalar_ml.training.module.LatticeModule` carrying the full layer spec in its hyperparameters,
so checkpoints load without this module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from scalar_ml.search.space import arch_spec

if TYPE_CHECKING:
    from scalar_ml.models.head import Head
    from scalar_ml.training.module import LatticeModule, OptimizerFactory, SchedulerFactory

__all__ = ["searchable_module"]

log = logging.getLogger(__name__)


def searchable_module(
    *,
    task: str,
    family: str,
    arch: Mapping[str, Any],
    lattice_size: Sequence[int],
    head: Head | Mapping[str, Any] | None = None,
    group: Sequence[str] | None = None,
    optimizer: OptimizerFactory | None = None,
    scheduler: SchedulerFactory | None = None,
    scheduler_monitor: str = "val/loss",
    scheduler_interval: str = "epoch",
    dims: int | None = None,
) -> LatticeModule:
    """A :class:`LatticeModule` for ``task`` whose network is the point ``arch`` of family ``family``.

    Args:
        task: ``observables``, ``detection`` or ``counting``.
        family: ``eq``, ``st``, ``fl`` or ``eqr``.
        arch: the flat architecture point (keys of :data:`scalar_ml.search.space.ARCH_DEFAULTS`).
        lattice_size: ``[nt, nx]`` of the training lattice (an fl network's input size; every
            kernel and pooling window must fit on it); ``[N_0, …, N_{d-1}]`` in d dimensions.
        head: what the network outputs (a :class:`~scalar_ml.models.head.Head` or a mapping of
            its fields, e.g. ``{outputs: 1, activation: sigmoid, per_site: true}``); ``None``: the
            task's head (:meth:`scalar_ml.tasks.Task.head`).
        group: generators of the point group of a family ``eqr`` network (``None``: ``[P, TC]``);
            ignored by the other families.
        optimizer, scheduler, scheduler_monitor, scheduler_interval: as for ``LatticeModule``.
        dims: the lattice dimension, when given (it must be ``len(lattice_size)``).

    Raises:
        InvalidArchitectureError: the point is outside the space or does not fit the lattice.
    """
    from scalar_ml.training.module import LatticeModule

    if dims is not None and dims != len(lattice_size):
        raise ValueError(
            f"dims = {dims} but the lattice_size {list(lattice_size)} has {len(lattice_size)} extents"
        )
    spec = arch_spec(arch, family, task=task, head=head, lattice_size=lattice_size, group=group)
    log.info("searchable %s network: %s", family, spec["description"])
    return LatticeModule(
        task=task,
        spec=spec,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_monitor=scheduler_monitor,
        scheduler_interval=scheduler_interval,
    )
