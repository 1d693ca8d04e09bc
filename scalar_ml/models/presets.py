"""The seed's 15 Optuna winners (SPEC §6, backup slides) as layer-spec presets under ``conf/``.

A preset is ``conf/presets/<task>/<name>.yaml`` and is addressed as ``"<task>/<name>"``:

- tasks 1 and 2: ``observables/{eq,st,fl}``, ``detection/{eq,st,fl}``;
- task 3 (1st/2nd/3rd winner of each family): ``counting/{eq,st,fl}_{1,2,3}``.

Each file holds a model spec (see :mod:`scalar_ml.models.spec`) plus ``task`` and ``description``;
the slide line each layer reproduces is written next to it. Any further ``*.yaml`` file dropped into
a task folder is picked up as a preset too.

Detection presets end in a sigmoid, as on the slides: ``forward`` returns probabilities. For a
numerically stable ``BCEWithLogitsLoss`` use :meth:`~scalar_ml.models.builder.LatticeNet.logits`.

>>> list_presets()[:3]
['observables/eq', 'observables/st', 'observables/fl']
>>> preset_spec("counting/eq_3")["family"]
'eq'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from scalar_ml.models.builder import LatticeNet, build_model, count_parameters
from scalar_ml.models.spec import FAMILIES, format_size, to_plain
from scalar_ml.paths import CONF_DIR

__all__ = [
    "PRESET_DIR",
    "build_preset",
    "format_preset_table",
    "list_presets",
    "preset_path",
    "preset_spec",
    "preset_table",
]

PRESET_DIR: Path = CONF_DIR / "presets"


def _sort_key(name: str) -> tuple[int, int, str]:
    from scalar_ml.tasks import task_names

    tasks = task_names()  # the seed's tasks in the order of the talk (task 1, 2, 3), then others
    task, _, stem = name.partition("/")
    family = stem.split("_")[0]
    task_rank = tasks.index(task) if task in tasks else len(tasks)
    family_rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    return (task_rank, family_rank, name)


def list_presets() -> list[str]:
    """All preset names (``"<task>/<name>"``), task 1 to 3, then eq, st, fl."""
    names = [f"{path.parent.name}/{path.stem}" for path in PRESET_DIR.glob("*/*.yaml")]
    return sorted(names, key=_sort_key)


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; ``ValueError`` listing the presets if there is none."""
    available = list_presets()
    if name not in available:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(available)}")
    return PRESET_DIR / f"{name}.yaml"


def preset_spec(name: str) -> dict[str, Any]:
    """The model spec of preset ``name`` as a plain dict (with ``name`` added)."""
    from omegaconf import OmegaConf  # the parser Hydra uses for the same files

    spec = to_plain(OmegaConf.load(preset_path(name)))
    if not isinstance(spec, dict):
        raise ValueError(f"preset {name!r}: {preset_path(name)} does not hold a mapping")
    spec["name"] = name
    return spec


def build_preset(name: str, *, dtype: torch.dtype | None = None) -> LatticeNet:
    """Build preset ``name`` (e.g. ``"counting/eq_1"``) with freshly initialised parameters."""
    return build_model(preset_spec(name), dtype=dtype)


def preset_table() -> list[dict[str, Any]]:
    """One record per preset: ``name``, ``family``, ``task``, ``params``, ``input_size``.

    ``input_size`` is ``[nt, nx]`` for fl presets and ``None`` where any lattice size works.
    """
    rows = []
    for name in list_presets():
        model = build_preset(name)
        rows.append(
            {
                "name": name,
                "family": model.family,
                "task": model.spec.get("task"),
                "params": count_parameters(model),
                "input_size": list(model.input_size) if model.input_size is not None else None,
            }
        )
    return rows


def format_preset_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Fixed-width text table of :func:`preset_table` records.

    >>> print(format_preset_table([{"name": "a/eq", "family": "eq", "task": "a", "params": 12, "input_size": None}]))
    name  family  task  input size  params
    a/eq  eq      a     any             12
    """
    header = ("name", "family", "task", "input size", "params")
    body = [
        (
            row["name"],
            row["family"],
            str(row["task"]),
            format_size(row["input_size"]) if row["input_size"] else "any",
            str(row["params"]),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = []
    for line in [header, *body]:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, line[-1].rjust(widths[-1])]))
    return "\n".join(lines)
