"""The seed's 15 Optuna winners (SPEC §6, backup slides) as layer-spec presets under ``conf/``.

A preset is ``conf/presets/<task>/<name>.yaml`` and is addressed as ``"<task>/<name>"``:

- tasks 1 and 2: ``observables/{eq,st,fl}``, ``detection/{eq,st,fl}``;
- task 3 (1st/2nd/3rd winner of each family): ``counting/{eq,st,fl}_{1,2,3}``.

Each file holds a model spec (see :mod:`scalar_ml.models.spec`) plus ``task`` and ``description``;
the slide line each layer reproduces is written next to it. Any further ``*.yaml`` file dropped into
a task folder is picked up as a preset too.

Detection presets end in a sigmoid, as on the slides: ``forward`` returns probabilities. For a
numerically stable ``BCEWithLogitsLoss`` use :meth:`~scalar_ml.models.builder.LatticeNet.logits`.

**Presets in d = 3, 4 dimensions** are derived from the 2D winners by :func:`lift_spec`
(``preset_spec(name, dims=3)``, ``build_preset(name, dims=3)``, ``model=eq lattice=8x8x8``): the
network stays the same layer by layer and *repeats the space axis*: every kernel, stride and
upsampling factor ``[k_t, k_x]`` becomes ``[k_t, k_x, …, k_x]`` (an int ``k`` stays ``k`` along
every axis, so the seed's 2×2 kernels become 2×2×2), the input has ``2d`` channels
``[k_0 … k_{d-1}, l_0 … l_{d-1}]``, channel widths, activations, biases and pooling modes are
unchanged, and an fl network's ``input_size [N_t, N_x]`` becomes ``[N_t, N_x, …, N_x]`` (8×8 ->
8×8×8) with its first dense layer taking the flattened ``C × V'`` features of the pooled lattice
(and, for a site output, its last dense layer giving ``C × V`` features for the unflatten).
Only the number of weights per convolution changes (``k_x`` more per new axis). A preset file
with ``dims: d`` is a hand-written d-dimensional preset and is used as it is. Family eqr has no
d-dimensional version (its point group is that of the 2D lattice).

>>> list_presets()[:3]
['observables/eq', 'observables/st', 'observables/fl']
>>> preset_spec("counting/eq_3")["family"]
'eq'
>>> spec3 = preset_spec("counting/fl_1", dims=3)
>>> spec3["dims"], spec3["input_size"], spec3["layers"][0]
(3, [8, 8, 8], {'type': 'conv', 'kernel': 2, 'out': 4, 'bias': False})
>>> count_parameters(build_preset("counting/eq_1", dims=3))   # 2D: 1800
3400
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from scalar_ml.models.builder import LatticeNet, build_model, count_parameters
from scalar_ml.models.spec import DIMS, FAMILIES, SpecError, format_size, to_plain
from scalar_ml.paths import CONF_DIR

__all__ = [
    "PRESET_DIR",
    "build_preset",
    "format_preset_table",
    "lift_spec",
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


def _lift_extents(value: Any, dims: int) -> Any:
    """``k`` stays ``k`` (every axis); ``[k_t, k_x]`` -> ``[k_t, k_x, …, k_x]`` (``dims`` entries)."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise SpecError(f"lifting needs 2D extents [time, space], got {list(value)!r}")
        return [value[0], *([value[1]] * (dims - 1))]
    return value


def lift_spec(spec: Mapping[str, Any], dims: int) -> dict[str, Any]:
    """The ``dims``-dimensional network derived from a 2D model spec (see the module docstring).

    Kernels, strides and upsampling factors repeat the space extent; ``input_size`` likewise; the
    first convolution's ``in`` (the configuration channels) and the ``in`` of the first dense
    layer after a ``flatten`` (the flattened features) are left to the builder; the last dense
    layer before an ``unflatten`` (fl site outputs) gives ``C × V`` features on the lifted
    lattice; ``in_channels`` is dropped (default ``2·dims``); everything else is kept. A spec that
    already has ``dims`` dimensions is returned as a copy.

    >>> lift_spec({"family": "st", "layers": [{"type": "conv", "kernel": [3, 1], "in": 4, "out": 2},
    ...     {"type": "max_pool", "kernel": 2, "stride": [2, 1]}]}, 3)["layers"]
    [{'type': 'conv', 'kernel': [3, 1, 1], 'out': 2}, {'type': 'max_pool', 'kernel': 2, 'stride': [2, 1, 1]}]
    """
    raw = dict(to_plain(spec))
    current = raw.get("dims", 2)
    if dims not in DIMS:
        raise SpecError(f"dims must be one of {DIMS}, got {dims!r}")
    if current == dims:
        return raw
    if current != 2:
        raise SpecError(
            f"model spec {raw.get('name', '')!r} is {current}-dimensional; only 2D specs are "
            f"lifted to {dims} dimensions"
        )
    if raw.get("family") == "eqr":
        raise SpecError(
            f"family 'eqr' has no {dims}-dimensional networks (its point group is that of the 2D "
            "lattice)"
        )
    layers = []
    first_conv, after_flatten = True, False
    for layer in raw.get("layers") or []:
        layer = dict(layer)
        for key in ("kernel", "stride", "factor"):
            if key in layer:
                layer[key] = _lift_extents(layer[key], dims)
        if layer.get("type") == "conv" and first_conv:
            layer.pop("in", None)
            first_conv = False
        if layer.get("type") == "flatten":
            after_flatten = True
        elif layer.get("type") == "linear" and after_flatten:
            layer.pop("in", None)
            after_flatten = False
        layers.append(layer)
    if any(layer.get("type") == "unflatten" for layer in layers):
        size = raw.get("input_size")
        if size is None:
            raise SpecError("an fl site-output spec needs its input_size to be lifted")
        sites, lifted = math.prod(size), math.prod(_lift_extents(size, dims))
        at = max(i for i, layer in enumerate(layers) if layer.get("type") == "unflatten")
        last = max(i for i, layer in enumerate(layers[:at]) if layer.get("type") == "linear")
        if layers[last]["out"] % sites:
            raise SpecError(
                f"layer {last} (linear): out = {layers[last]['out']} is not channels × the "
                f"{sites} sites of the input lattice"
            )
        layers[last]["out"] = layers[last]["out"] // sites * lifted
    out = {k: v for k, v in raw.items() if k not in ("in_channels", "layers", "dims")}
    if raw.get("input_size") is not None:
        out["input_size"] = list(_lift_extents(raw["input_size"], dims))
    if "description" in out:
        out["description"] = (
            f"{out['description']} Lifted to {dims}D (the space axis repeated: scalar_ml.models."
            "presets.lift_spec)."
        )
    return {**out, "dims": dims, "layers": layers}


def preset_spec(name: str, *, dims: int | None = None) -> dict[str, Any]:
    """The model spec of preset ``name`` as a plain dict (with ``name`` added); with ``dims``, the
    spec for a ``dims``-dimensional lattice (a 2D preset lifted by :func:`lift_spec`)."""
    from omegaconf import OmegaConf  # the parser Hydra uses for the same files

    spec = to_plain(OmegaConf.load(preset_path(name)))
    if not isinstance(spec, dict):
        raise ValueError(f"preset {name!r}: {preset_path(name)} does not hold a mapping")
    spec["name"] = name
    if dims is not None and dims != spec.get("dims", 2):
        spec = lift_spec(spec, dims)
    return spec


def build_preset(
    name: str, *, dtype: torch.dtype | None = None, dims: int | None = None
) -> LatticeNet:
    """Build preset ``name`` (e.g. ``"counting/eq_1"``) with freshly initialised parameters, for
    a ``dims``-dimensional lattice when given (:func:`lift_spec`)."""
    return build_model(preset_spec(name, dims=dims), dtype=dtype)


def preset_table(dims: int = 2) -> list[dict[str, Any]]:
    """One record per preset: ``name``, ``family``, ``task``, ``params``, ``input_size``.

    ``input_size`` is ``[nt, nx]`` for fl presets and ``None`` where any lattice size works. With
    ``dims`` = 3 or 4 the records are those of the lifted presets (family eqr has none).
    """
    rows = []
    for name in list_presets():
        if dims != 2 and preset_spec(name).get("family") == "eqr":
            continue
        model = build_preset(name, dims=None if dims == 2 else dims)
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
