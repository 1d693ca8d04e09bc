r"""The architecture search space: a flat ``arch`` mapping of scalars -> an EQ / ST / FL / EQR layer spec.

Hydra's Optuna sweeper can only sample flat config values, so a sampled network is a mapping of
scalars (``model.arch`` in ``conf/model/searchable.yaml``) that :func:`arch_layers` turns into a
layer list in the format of :mod:`scalar_ml.models.spec`. Keys (slots ``i = 0 … 4``):

``n_conv``
    number of periodic convolutions, 1 … :data:`MAX_CONV`; slots ``i >= n_conv`` are ignored.
``kernel_<i>``, ``channels_<i>``
    kernel size (``k×k``) and output channels of convolution ``i``. Every convolution is followed
    by the activation, except optionally the last one (``last_conv_activation``).
``pool_<i>``
    ``none``, ``avg`` or ``max``: a 2×2 stride-2 local pooling after convolution ``i`` (and its
    activation). Only families ``st`` and ``fl`` may pool; for ``eq`` every used slot must be
    ``none``.
``global_pool``
    ``avg``, ``max`` or ``sum``: the reduction of ``eq`` / ``st`` / ``eqr`` networks (``fl``
    flattens and ignores it).
``group_pool``
    ``avg``, ``max`` or ``sum``: the pooling over the point group of ``eqr`` networks (ignored by the
    other families).
``n_linear``
    number of dense layers after the reduction, 0 … :data:`MAX_LINEAR`; the last one has one output
    per target. ``0`` (eq/st only) means no dense layer at all: the last convolution then has one
    channel per target (its ``channels_<i>`` is ignored) and the pooled channels are the output,
    like the seed's 3rd EQ counting network.
``linear_<j>``
    width of hidden dense layer ``j`` (``j < n_linear - 1``), followed by the activation when
    ``linear_activation`` is true.
``activation``
    the activation's name (:data:`scalar_ml.models.layers.ACTIVATIONS`), default ``leaky_relu``.
``bias``
    bias of every layer, unless one of the group overrides ``bias_first_conv``, ``bias_conv``
    (the other convolutions), ``bias_hidden`` (hidden dense layers) or ``bias_out`` (the output
    dense layer) is set to true/false (``null``: follow ``bias``). The seed's detection winners
    mix them (SPEC §6); the counting winners have no bias at all.

The output is given either by ``task`` (its head, :meth:`scalar_ml.tasks.Task.head`: observables 2
targets, detection and counting 1; detection ends in a sigmoid like the seed's presets) or,
task-independently, by a
:class:`~scalar_ml.models.head.Head` (``head=``; it wins when both are given, ``task`` is then only
recorded in the spec). A head with ``per_site = True`` gives a site-output network
(``output: site``, ``(B, outputs, Nt, Nx)``) from the same keys, no key added:

- eq / st: ``global_pool`` is ignored (nothing is reduced) and the dense layers become pointwise:
  each of the ``n_linear`` dense layers is a 1×1 convolution (the same weights applied at every
  site) of width ``linear_<j>``, the last with ``outputs`` channels, with the same bias groups and
  activations; ``n_linear = 0`` lets the last convolution give the ``outputs`` channels as before.
- st: after the pointwise layers, one ``{type: upsample, factor: 2^p}`` (``p`` = number of pooled
  slots) restores the input lattice by copying each coarse site to its ``2^p × 2^p`` block, so an
  st site network predicts on the coarse lattice and is equivariant under shifts by multiples of
  ``2^p`` (on lattices ``2^p`` divides; others are refused, naming the pooling). The pointwise
  layers commute with nearest upsampling, so placing them before it is the same network at a
  quarter of the cost per pooling.
- fl: the output dense layer gives ``outputs·Nt·Nx`` features on the ``lattice_size`` lattice, and
  ``{type: unflatten, channels: outputs}`` reshapes them to ``(B, outputs, Nt, Nx)``.

Each of the seed's 15 Optuna winners is a point of this space (tests rebuild all of them), for
instance the 1st EQ counting network:

>>> arch = {"n_conv": 4, "kernel_0": 1, "channels_0": 32, "kernel_1": 2, "channels_1": 8,
...         "kernel_2": 2, "channels_2": 16, "kernel_3": 1, "channels_3": 8,
...         "global_pool": "sum", "n_linear": 1, "bias": False}
>>> from scalar_ml.models import preset_spec
>>> task = preset_spec("counting/eq_1")["task"]  # the task the preset declares
>>> print(describe_layers(arch_layers(arch, "eq", task=task)))
Conv1x1(4,32) Conv2x2(32,8) Conv2x2(8,16) Conv1x1(16,8) GlobalSumPool Linear(8,1) no-bias

and the same point with one sigmoid output per site, as an st network pooling once:

>>> from scalar_ml.models.head import Head
>>> print(describe_layers(arch_layers({**arch, "pool_1": "avg"}, "st",
...                                   head=Head(1, "sigmoid", per_site=True))))
Conv1x1(4,32) Conv2x2(32,8) AvgPool Conv2x2(8,16) Conv1x1(16,8) Conv1x1(8,1) Upsample2x2 Sigmoid no-bias

**Family eqr** (:mod:`scalar_ml.models.group`; equivariant under translations and the point group
``group``, default ``[P, TC]``, the exact symmetries of the data at any μ) maps the same keys onto
group layers: convolution 0 is the ``lift_conv``, convolutions ``1 … n_conv−1`` are ``group_conv``
(``kernel_<i>``, ``channels_<i>`` = channels *per group element*, so a layer has ``|H|`` times the
weights of a plain convolution of that width), then ``{type: group_pool, mode: group_pool}``, the
``global_pool`` and the dense layers as for eq. Its pool slots must be ``none`` and its head per
configuration (eqr has no site outputs). The eqr presets are points of this space (tests rebuild
them), e.g. ``counting/eqr_1``:

>>> eqr = {**arch, "channels_0": 17, "channels_1": 4, "channels_2": 8, "channels_3": 4,
...        "group_pool": "sum"}
>>> print(describe_layers(arch_layers(eqr, "eqr", task=task)))
LiftConv1x1(4,17) GroupConv2x2(17,4) GroupConv2x2(4,8) GroupConv1x1(8,4) GroupSumPool GlobalSumPool Linear(4,1) no-bias
>>> from scalar_ml.models import build_model, count_parameters
>>> count_parameters(build_model(arch_spec(eqr, "eqr", task=task, lattice_size=(8, 8))))
1800

:func:`arch_spec` also checks a point on the training lattice: a kernel or pooling window larger
than the lattice it meets raises :class:`InvalidArchitectureError` (a ``ValueError``) naming the
layer, before any data are loaded.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from scalar_ml.models.head import Head
from scalar_ml.models.spec import FAMILIES, Flatten, SpecError, parse_layer, to_plain

__all__ = [
    "ARCH_DEFAULTS",
    "EQR_GROUP",
    "GLOBAL_POOLS",
    "MAX_CONV",
    "MAX_LINEAR",
    "POOLS",
    "InvalidArchitectureError",
    "arch_layers",
    "arch_spec",
    "describe_layers",
    "normalise_arch",
    "resolve_head",
]

#: Convolution slots of the space (the seed's winners use 2 … 5 convolutions).
MAX_CONV = 5
#: Dense layers after the reduction, output layer included (the seed's 1st FL counting net has 3).
MAX_LINEAR = 3
#: Local pooling kinds of a slot (2×2, stride 2).
POOLS: tuple[str, ...] = ("none", "avg", "max")
#: Reductions of eq / st networks.
GLOBAL_POOLS: tuple[str, ...] = ("avg", "max", "sum")
_BIAS_GROUPS: tuple[str, ...] = ("bias_first_conv", "bias_conv", "bias_hidden", "bias_out")
#: Generators of an eqr network's point group unless given: the exact symmetries at any μ.
EQR_GROUP: tuple[str, ...] = ("P", "TC")

#: Every key of an ``arch`` mapping and its default (``conf/model/searchable.yaml`` lists the same).
ARCH_DEFAULTS: dict[str, Any] = {
    "n_conv": 2,
    **{f"kernel_{i}": 2 for i in range(MAX_CONV)},
    **{f"channels_{i}": 8 for i in range(MAX_CONV)},
    **{f"pool_{i}": "none" for i in range(MAX_CONV)},
    "global_pool": "avg",
    "group_pool": "avg",
    "n_linear": 1,
    **{f"linear_{j}": 16 for j in range(MAX_LINEAR - 1)},
    "activation": "leaky_relu",
    "last_conv_activation": True,
    "linear_activation": True,
    "bias": True,
    **dict.fromkeys(_BIAS_GROUPS),
}


class InvalidArchitectureError(SpecError):
    """A sampled ``arch`` point that does not make a valid network (on the training lattice)."""


def _int_in(arch: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = arch[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArchitectureError(f"arch.{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low} … {high}" if high is not None else f">= {low}"
        raise InvalidArchitectureError(f"arch.{key} must be {bounds}, got {value}")
    return int(value)


def _one_of(arch: Mapping[str, Any], key: str, choices: Sequence[str]) -> str:
    value = arch[key]
    if value not in choices:
        raise InvalidArchitectureError(f"arch.{key} must be one of {list(choices)}, got {value!r}")
    return str(value)


def _flag(arch: Mapping[str, Any], key: str, *, optional: bool = False) -> bool | None:
    value = arch[key]
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        allowed = "true, false or null" if optional else "true or false"
        raise InvalidArchitectureError(f"arch.{key} must be {allowed}, got {value!r}")
    return value


def normalise_arch(arch: Mapping[str, Any]) -> dict[str, Any]:
    """``arch`` as a plain dict with every key of :data:`ARCH_DEFAULTS` (missing keys defaulted).

    Unknown keys are refused (a typo never silently falls back to a default).
    """
    plain = to_plain(arch)
    if not isinstance(plain, Mapping):
        raise InvalidArchitectureError(f"arch must be a mapping, got {arch!r}")
    unknown = sorted(set(plain) - set(ARCH_DEFAULTS))
    if unknown:
        raise InvalidArchitectureError(
            f"unknown arch key(s) {unknown}; known: {', '.join(ARCH_DEFAULTS)}"
        )
    return {**ARCH_DEFAULTS, **plain}


def resolve_head(task: str | None = None, head: Head | Mapping[str, Any] | None = None) -> Head:
    """The output of a point: ``head`` when given (a :class:`Head` or a mapping of its fields),
    else the task's (:meth:`scalar_ml.tasks.Task.head`).

    >>> from scalar_ml.models import preset_spec
    >>> resolve_head(preset_spec("detection/eq")["task"])  # a task by name: its head
    Head(outputs=1, activation='sigmoid', per_site=False)
    >>> resolve_head()
    Traceback (most recent call last):
    ...
    scalar_ml.search.space.InvalidArchitectureError: give task or head (what the network outputs)
    """
    if head is not None:
        try:
            return Head.parse(head)
        except SpecError as exc:
            raise InvalidArchitectureError(str(exc)) from exc
    if task is None:
        raise InvalidArchitectureError("give task or head (what the network outputs)")
    from scalar_ml.tasks import get_task

    try:
        return get_task(task).head()
    except ValueError as exc:
        raise InvalidArchitectureError(str(exc)) from None


def arch_layers(
    arch: Mapping[str, Any],
    family: str,
    *,
    task: str | None = None,
    head: Head | Mapping[str, Any] | None = None,
    lattice_size: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The layer specs (:mod:`scalar_ml.models.spec` format) of the point ``arch``.

    The output is ``head``'s, or ``task``'s (:func:`resolve_head`). ``lattice_size = (nt, nx)`` is
    needed only by an fl network with a per-site head (its output layer has ``outputs·nt·nx``
    features; on a d-dimensional lattice ``outputs·V``). Kernels and pooling windows are ints: on a
    d-dimensional lattice ``k`` means ``k`` along every axis. Raises :class:`InvalidArchitectureError` for values outside the space or points the
    family does not allow (pooling in ``eq``, no dense layer in ``fl``). Unused slots are ignored.
    """
    if family not in FAMILIES:
        raise InvalidArchitectureError(
            f"unknown family {family!r}; expected one of {list(FAMILIES)}"
        )
    resolved = resolve_head(task, head)
    if family == "eqr" and resolved.per_site:
        raise InvalidArchitectureError(
            "family 'eqr' has no site-output networks: a per-site head needs family eq, st or fl"
        )
    n_outputs, output_activation = resolved.outputs, resolved.activation
    a = normalise_arch(arch)
    n_conv = _int_in(a, "n_conv", 1, MAX_CONV)
    n_linear = _int_in(a, "n_linear", 0, MAX_LINEAR)
    activation = str(a["activation"])
    act = {"type": "activation", "name": activation}
    bias = _flag(a, "bias")
    groups = {key: _flag(a, key, optional=True) for key in _BIAS_GROUPS}

    def bias_of(group: str) -> bool:
        value = groups[group]
        return bool(bias) if value is None else value

    if family == "fl" and n_linear == 0:
        raise InvalidArchitectureError(
            "arch.n_linear = 0 is not possible for family 'fl' (a flattened network needs at "
            "least the output dense layer)"
        )
    if family == "fl" and resolved.per_site and lattice_size is None:
        raise InvalidArchitectureError(
            "an fl network with a per-site head needs lattice_size = (nt, nx) (its output dense "
            "layer gives outputs·nt·nx features)"
        )
    layers: list[dict[str, Any]] = []
    n_pools = 0
    for i in range(n_conv):
        last = i == n_conv - 1
        channels = n_outputs if last and n_linear == 0 else _int_in(a, f"channels_{i}", 1)
        conv_type = "conv" if family != "eqr" else "lift_conv" if i == 0 else "group_conv"
        layers.append(
            {
                "type": conv_type,
                "kernel": _int_in(a, f"kernel_{i}", 1),
                "out": channels,
                "bias": bias_of("bias_first_conv" if i == 0 else "bias_conv"),
            }
        )
        if not last or _flag(a, "last_conv_activation"):
            layers.append(dict(act))
        pool = _one_of(a, f"pool_{i}", POOLS)
        if pool != "none":
            if family in ("eq", "eqr"):
                raise InvalidArchitectureError(
                    f"arch.pool_{i} = {pool!r}: family {family!r} has no strided pooling (use "
                    "family 'st' or 'fl', or pool_<i> = none)"
                )
            layers.append({"type": f"{pool}_pool", "kernel": 2, "stride": 2})
            n_pools += 1
    # Dense layers: on the reduced features, or (site output of eq/st) pointwise 1×1 convolutions.
    pointwise = resolved.per_site and family != "fl"
    dense: dict[str, Any] = {"type": "conv", "kernel": 1} if pointwise else {"type": "linear"}
    if family == "fl":
        layers.append({"type": "flatten"})
    elif not resolved.per_site:
        if family == "eqr":
            layers.append({"type": "group_pool", "mode": _one_of(a, "group_pool", GLOBAL_POOLS)})
        layers.append({"type": "global_pool", "mode": _one_of(a, "global_pool", GLOBAL_POOLS)})
    linear_activation = _flag(a, "linear_activation")
    for j in range(n_linear - 1):
        layers.append(
            {**dense, "out": _int_in(a, f"linear_{j}", 1), "bias": bias_of("bias_hidden")}
        )
        if linear_activation:
            layers.append(dict(act))
    if n_linear > 0:
        if family == "fl" and resolved.per_site:
            assert lattice_size is not None  # checked above
            sites = math.prod(int(n) for n in lattice_size)
            layers.append({**dense, "out": n_outputs * sites, "bias": bias_of("bias_out")})
            layers.append({"type": "unflatten", "channels": n_outputs})
        else:
            layers.append({**dense, "out": n_outputs, "bias": bias_of("bias_out")})
    if pointwise and n_pools:
        layers.append({"type": "upsample", "factor": 2**n_pools})
    if output_activation is not None:
        layers.append({"type": "activation", "name": output_activation})
    for index, layer in enumerate(layers):  # activation names and values, as the builder will
        try:
            parse_layer(index, layer)
        except SpecError as exc:
            raise InvalidArchitectureError(f"arch gives an invalid layer: {exc}") from exc
    return layers


def arch_spec(
    arch: Mapping[str, Any],
    family: str,
    *,
    task: str | None = None,
    head: Head | Mapping[str, Any] | None = None,
    lattice_size: Sequence[int],
    group: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A complete model spec for :func:`scalar_ml.models.build_model`, checked on ``lattice_size``.

    ``group``: generators of the point group of a family ``eqr`` network (default
    :data:`EQR_GROUP`, ``[P, TC]``); the other families ignore it.

    The output is ``head``'s, or ``task``'s (:func:`resolve_head`); ``task``, when given, is
    recorded in the spec. ``lattice_size = (nt, nx)`` is the training lattice (``(N_0, …,
    N_{d-1})`` in d = 3, 4 dimensions: the spec then has ``dims: d``): the input size of an fl
    network and the lattice every kernel and pooling window must fit on (and, for an st
    site-output network, that every stride must divide). Raises :class:`InvalidArchitectureError`
    naming the layer that does not fit.
    """
    from scalar_ml.models.builder import trace_lattice
    from scalar_ml.models.families import check_family
    from scalar_ml.models.spec import format_size

    resolved = resolve_head(task, head)
    size = tuple(int(n) for n in lattice_size)
    dims = len(size)
    if dims not in (2, 3, 4):
        raise InvalidArchitectureError(
            f"lattice_size must have 2, 3 or 4 extents (time first), got {list(lattice_size)}"
        )
    layers = arch_layers(arch, family, head=resolved, lattice_size=size)
    parsed = [parse_layer(index, layer, dims) for index, layer in enumerate(layers)]
    try:
        check_family(family, parsed, resolved.output, dims=dims)
        trace_lattice(parsed, size)
        flatten = next((layer.index for layer in parsed if isinstance(layer, Flatten)), None)
        flattened_size = (
            trace_lattice(parsed[: flatten + 1], size).output_size if flatten is not None else None
        )
    except InvalidArchitectureError:
        raise
    except SpecError as exc:
        raise InvalidArchitectureError(
            f"the sampled architecture {describe_layers(layers)} does not fit the "
            f"{format_size(size)} training lattice: {exc}"
        ) from exc
    spec: dict[str, Any] = {"family": family}
    if dims != 2:
        spec["dims"] = dims
    if family == "eqr":
        from scalar_ml.models.group import parse_group

        names = list(EQR_GROUP) if group is None else to_plain(group)
        try:
            parse_group(names)
        except SpecError as exc:
            raise InvalidArchitectureError(str(exc)) from exc
        spec["group"] = list(names)
    if task is not None:
        spec["task"] = task
    spec.update(
        layers=layers,
        description=describe_layers(
            layers, in_channels=2 * dims, flattened_size=flattened_size, lattice_size=size
        ),
    )
    if resolved.per_site:
        spec["output"] = resolved.output
    if family == "fl":
        spec["input_size"] = list(size)
    return spec


def describe_layers(
    layers: Sequence[Mapping[str, Any]],
    in_channels: int = 4,
    flattened_size: Sequence[int] | None = None,
    lattice_size: Sequence[int] | None = None,
) -> str:
    """One line in the notation of the seed's slides, activations implied.

    An activation is implied after every convolution and hidden dense layer; where there is none,
    the layer is marked ``[no act]`` (the output layer, the last dense layer or, in a network
    without reduction, the last convolution, needs none); a non-LeakyReLU activation is named once
    at the end (``act=gelu``). Bias-free layers are starred as on the slides (``Conv*``), or
    ``no-bias`` is appended when no layer has a bias. The number of flattened features is ``C·h·w``
    with ``flattened_size = (h, w)``, the lattice reaching the flatten (``?`` when not given). A
    final sigmoid is written ``Sigmoid``. Upsampling by ``f_t × f_x`` is ``Upsample<f_t>x<f_x>``;
    an unflatten to ``C`` channels on the ``lattice_size = (h, w)`` input lattice is
    ``Unflatten(C,h,w)`` (``?`` for what is not known). On a d-dimensional lattice (``lattice_size``
    with d entries) kernels and factors have d extents: ``Conv2x2x2(6,8)``.

    >>> describe_layers([{"type": "conv", "kernel": 2, "out": 4, "bias": False},
    ...                  {"type": "activation", "name": "leaky_relu"},
    ...                  {"type": "max_pool", "kernel": 2, "stride": 2},
    ...                  {"type": "global_pool", "mode": "max"},
    ...                  {"type": "linear", "out": 1}, {"type": "activation", "name": "sigmoid"}])
    'Conv2x2(4,4)* MaxPool GlobalMaxPool Linear(4,1) Sigmoid'
    """
    parts: list[str] = []
    biases: list[bool] = []
    activations: set[str] = set()
    channels: int | None = in_channels
    dims = 2 if lattice_size is None else len(lattice_size)
    n = len(layers)
    reduced = any(layer["type"] in ("global_pool", "flatten") for layer in layers)
    output_kinds = ("linear",) if reduced else ("linear", "conv")
    conv_names = {"conv": "Conv", "lift_conv": "LiftConv", "group_conv": "GroupConv"}
    for index, layer in enumerate(layers):
        kind = layer["type"]
        following = layers[index + 1]["type"] if index + 1 < n else None
        if kind in ("linear", *conv_names):
            bias = bool(layer.get("bias", True))
            biases.append(bias)
            if kind in conv_names:
                k = layer["kernel"]
                extents = (k,) * dims if isinstance(k, int) else tuple(k)
                text = f"{conv_names[kind]}{'x'.join(map(str, extents))}({channels},{layer['out']})"
            else:
                text = f"Linear({'?' if channels is None else channels},{layer['out']})"
            channels = int(layer["out"])
            parts.append(text + ("" if bias else "*"))
            is_output = kind in output_kinds and not any(
                later["type"] in output_kinds for later in layers[index + 1 :]
            )
            if following != "activation" and not is_output:
                parts[-1] += "[no act]"
        elif kind in ("avg_pool", "max_pool"):
            parts.append("AvgPool" if kind == "avg_pool" else "MaxPool")
        elif kind == "global_pool":
            parts.append(f"Global{str(layer['mode']).capitalize()}Pool")
        elif kind == "group_pool":
            parts.append(f"Group{str(layer['mode']).capitalize()}Pool")
        elif kind == "flatten":
            parts.append("Flatten")
            if flattened_size is None or channels is None:
                channels = None
            else:
                channels *= math.prod(int(n) for n in flattened_size)
        elif kind == "upsample":
            f = layer["factor"]
            factors = (f,) * dims if isinstance(f, int) else tuple(f)
            parts.append(f"Upsample{'x'.join(map(str, factors))}")
        elif kind == "unflatten":
            extents = ("?", "?") if lattice_size is None else tuple(lattice_size)
            out_channels = layer.get("channels")
            if out_channels is None and channels is not None and lattice_size is not None:
                out_channels = channels // math.prod(int(n) for n in lattice_size)
            parts.append(
                f"Unflatten({'?' if out_channels is None else out_channels},"
                f"{','.join(map(str, extents))})"
            )
            channels = None if out_channels is None else int(out_channels)
        elif kind == "activation":
            if index == n - 1 and layer.get("name") == "sigmoid":
                parts.append("Sigmoid")
            else:
                activations.add(str(layer.get("name")))
    if biases and not any(biases):
        parts = [part.replace("*", "", 1) for part in parts] + ["no-bias"]
    extra = sorted(activations - {"leaky_relu"})
    if extra:
        parts.append("act=" + ",".join(extra))
    return " ".join(parts)
