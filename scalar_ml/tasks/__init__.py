r"""Tasks as plug-ins: one object per task, looked up by name (see :mod:`scalar_ml.tasks.base`).

Every module of this package that defines ``TASK`` (a :class:`~scalar_ml.tasks.base.Task`) is a
task; so is every object that an installed distribution publishes under the entry-point group
``scalar_ml.tasks``. Nothing else in scalar-ml names a task: the data modules, the LightningModule,
the search space, evaluation, plots and the reproduction page ask :func:`get_task`.

The tasks of the seed paper (SPEC §5):

- ``observables`` (:mod:`.observables`): regression of ``(n, |φ|²)``;
- ``detection`` (:mod:`.detection`): is flux conservation violated anywhere?
- ``counting`` (:mod:`.counting`): how many open worms?

Adding a task: ``docs/adding-a-task.md``.

>>> task_names()[:3]
('observables', 'detection', 'counting')
>>> get_task("counting").targets
('count',)
>>> get_task("countnig")
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: unknown task 'countnig'; tasks: observables, detection, counting...
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from scalar_ml.config import ConfigError
from scalar_ml.tasks.base import ClosedSample, Metric, Outputs, Task

__all__ = ["ClosedSample", "Metric", "Outputs", "Task", "all_tasks", "get_task", "task_names"]

#: Entry-point group under which other distributions publish tasks (``name = "module:TASK"``).
ENTRY_POINT_GROUP = "scalar_ml.tasks"


@cache
def _registry() -> dict[str, Task]:
    found: list[Task] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        task = getattr(module, "TASK", None)
        if isinstance(task, Task):
            found.append(task)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        task = ep.load()
        if not isinstance(task, Task):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a scalar_ml Task")
        found.append(task)
    registry: dict[str, Task] = {}
    for task in sorted(found, key=lambda t: (t.order, t.name)):
        if not task.name:
            raise TypeError(f"{type(task).__name__} has no name")
        if task.name in registry:
            raise TypeError(f"two tasks are named {task.name!r}")
        registry[task.name] = task
    return registry


def task_names() -> tuple[str, ...]:
    """Every task's name, the seed's tasks first."""
    return tuple(_registry())


def all_tasks() -> tuple[Task, ...]:
    """Every task, in :func:`task_names` order."""
    return tuple(_registry().values())


def get_task(name: str | Task) -> Task:
    """The task called ``name`` (a task passes through); ``ConfigError`` listing the tasks otherwise."""
    if isinstance(name, Task):
        return name
    try:
        return _registry()[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown task {name!r}; tasks: {', '.join(task_names())}") from None
