"""Layer specifications: plain YAML/JSON-friendly dicts, parsed and validated.

A *model spec* is a mapping::

    family: eq | st | fl | eqr  # validated architecture kind (scalar_ml.models.families)
    output: configuration | site  # optional, default configuration (see below)
    dims: 2 | 3 | 4             # optional: the lattice dimension d (default 2, or len(input_size))
    in_channels: 4              # optional, default 2d (4: [k_t, k_x, l_t, l_x])
    input_size: [nt, nx] | null # required for fl (fixed lattice), optional check for eq/st
    group: [P, TC]              # eqr only: generators of its point group (scalar_ml.models.group)
    layers: [ ... ]             # list of layer specs, applied in order
    task, description, name     # optional metadata, carried along and ignored by the builder

``output`` (:data:`OUTPUTS`) says what the network returns for a batch ``(B, in_channels, Nt, Nx)``:
``configuration`` (the default) one vector per configuration, ``(B, C)``, after a reduction
(``global_pool`` or ``flatten``); ``site`` a lattice field ``(B, C, Nt, Nx)`` with the input's lattice
shape, one vector per site. Which layers each family may use for either output is decided in
:mod:`scalar_ml.models.families`; the output is never guessed from the layers, so a forgotten
``global_pool`` is an error, not silently a per-site network.

and each *layer spec* is one of (``kernel``, ``stride`` and ``factor`` are an int or ``[k_t, k_x]``;
on a d-dimensional lattice an int ``k`` means ``k`` along every axis and a list has d entries,
time first: ``kernel: 2`` is 2×2×2 in 3D, ``[3, 2, 2]`` is 3 in time and 2 in space)::

    {type: conv, kernel: 2, out: 32, in: 4, bias: true}   # periodic, stride 1, size-keeping
    {type: avg_pool, kernel: 2, stride: 2}                # stride defaults to kernel
    {type: max_pool, kernel: 2, stride: 2}
    {type: global_pool, mode: avg | max | sum}            # (B, C, Nt, Nx) -> (B, C)
    {type: flatten}                                       # (B, C, Nt, Nx) -> (B, C·Nt·Nx)
    {type: linear, out: 24, in: 360, bias: false}
    {type: activation, name: leaky_relu, negative_slope: 0.01}
    {type: upsample, factor: 2, mode: nearest}            # (B, C, h, w) -> (B, C, 2h, 2w); site only
    {type: unflatten, channels: 1}                        # (B, C·Nt·Nx) -> (B, C, Nt, Nx); fl site only
    {type: lift_conv, kernel: 1, out: 16, bias: false}    # eqr: configurations -> group features
    {type: group_conv, kernel: 2, out: 8, bias: false}    # eqr: group features -> group features
    {type: group_pool, mode: avg | max | sum}             # eqr: pool over the group axis

``in`` is optional for ``conv`` and ``linear``: it is inferred from the previous layers and, when
given, checked against the inferred value (so a spec copied from a table such as the seed's
``Linear(360, 24)`` is verified). ``bias`` defaults to true. Activations are always written as
``{type: activation, name: ...}`` with names from :data:`scalar_ml.models.layers.ACTIVATIONS`
(``relu``, ``leaky_relu``, ``elu``, ``gelu``, ``silu``, ``tanh``, ``sigmoid``, ``softplus``,
``identity``); their extra keys are the torch module's options. Unknown keys are refused, so a typo
never silently falls back to a default. ``upsample`` copies every site to an ``f_t × f_x`` block
(``mode: nearest``, the default and only mode; see :mod:`scalar_ml.models.layers`). ``unflatten``
reshapes the features of an fl network back onto its fixed ``input_size`` lattice; ``channels`` is
optional and, when given, checked against ``features / (Nt·Nx)``.

Every error is a :class:`SpecError` (a ``ValueError``) whose message starts with the offending layer,
e.g. ``layer 2 (conv): ...``. The eqr layers exist in 2D only.

>>> parse_layer(0, {"type": "conv", "kernel": 2, "out": 8, "bias": False}).to_dict()
{'type': 'conv', 'kernel': [2, 2], 'out': 8, 'bias': False}
>>> parse_layer(3, {"type": "conv", "kernel": 2, "out": 0})
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 3 (conv): 'out' must be a positive integer, got 0
>>> parse_layer(0, {"type": "conv", "kernel": 2, "out": 8}, dims=3).to_dict()
{'type': 'conv', 'kernel': [2, 2, 2], 'out': 8, 'bias': True}
>>> parse_layer(1, {"type": "max_pool", "kernel": [1, 2]}, dims=3)
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 1 (max_pool): 'kernel' must be an int or a list of 3 extents (time first), got [1, 2]
>>> parse_layer(5, {"type": "upsample", "factor": [2, 1]}).to_dict()
{'type': 'upsample', 'factor': [2, 1], 'mode': 'nearest'}
>>> parse_layer(5, {"type": "upsample", "factor": 2, "mode": "bilinear"})
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 5 (upsample): 'mode' must be one of ['nearest'], got 'bilinear'
>>> parse_output("sites")
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: model spec: 'output' must be one of configuration, site, got 'sites'
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scalar_ml.config import to_plain
from scalar_ml.models.layers import ACTIVATIONS, GLOBAL_POOL_MODES, UPSAMPLE_MODES

__all__ = [
    "DIMS",
    "FAMILIES",
    "LAYER_TYPES",
    "MODEL_KEYS",
    "OUTPUTS",
    "Activation",
    "Conv",
    "Flatten",
    "GlobalPool",
    "LayerSpec",
    "Linear",
    "LocalPool",
    "SpecError",
    "Unflatten",
    "Upsample",
    "format_size",
    "parse_dims",
    "parse_input_size",
    "parse_layer",
    "parse_output",
    "to_plain",
]

FAMILIES: tuple[str, ...] = ("eq", "st", "fl", "eqr")
#: Lattice dimensions a network can have (its ``dims``).
DIMS: tuple[int, ...] = (2, 3, 4)
LAYER_TYPES: tuple[str, ...] = (
    "conv",
    "avg_pool",
    "max_pool",
    "global_pool",
    "flatten",
    "linear",
    "activation",
    "upsample",
    "unflatten",
    # family eqr (scalar_ml.models.group)
    "lift_conv",
    "group_conv",
    "group_pool",
)
#: What a network returns per configuration: one vector (``configuration``, ``(B, C)``) or a field
#: on the input lattice (``site``, ``(B, C, Nt, Nx)``). The first is the default.
OUTPUTS: tuple[str, ...] = ("configuration", "site")
#: Keys a model spec may have; ``task``, ``description`` and ``name`` are metadata.
MODEL_KEYS: tuple[str, ...] = (
    "family",
    "output",
    "dims",
    "layers",
    "in_channels",
    "input_size",
    "group",  # family eqr: generators of its point group, e.g. [P, TC] (scalar_ml.models.group)
    "task",
    "description",
    "name",
)


class SpecError(ValueError):
    """A model or layer spec that cannot be built; the message names the offending layer."""


def format_size(size: Sequence[int]) -> str:
    """``(60, 4) -> '60×4'`` (time × space)."""
    return "×".join(str(int(n)) for n in size)


def _where(index: int, layer_type: str) -> str:
    return f"layer {index} ({layer_type})"


def _positive_int(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise SpecError(f"{where}: {key!r} must be a positive integer, got {value!r}")
    return int(value)


def _int_tuple(value: Any, key: str, where: str, dims: int) -> tuple[int, ...]:
    """An int ``k`` (``k`` along every axis) or a list of ``dims`` positive ints (time first)."""
    if dims == 2:
        return _int_pair(value, key, where)
    if isinstance(value, list | tuple):
        if len(value) != dims:
            raise SpecError(
                f"{where}: {key!r} must be an int or a list of {dims} extents (time first), "
                f"got {list(value)!r}"
            )
        return tuple(_positive_int(v, key, where) for v in value)
    return (_positive_int(value, key, where),) * dims


def _int_pair(value: Any, key: str, where: str) -> tuple[int, int]:
    """An int ``k`` (meaning ``k×k``) or a pair ``[k_t, k_x]`` of positive ints."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise SpecError(f"{where}: {key!r} must be an int or [time, space], got {value!r}")
        return (_positive_int(value[0], key, where), _positive_int(value[1], key, where))
    k = _positive_int(value, key, where)
    return (k, k)


def _bool(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str, hint: str = "") -> None:
    unknown = sorted(set(raw) - allowed - {"type"})
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}"
            + (f" ({hint})" if hint else "")
        )


def _required(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] is None:
        raise SpecError(f"{where}: missing required key {key!r}")
    return raw[key]


@dataclass(frozen=True)
class LayerSpec(ABC):
    """A parsed layer: its position in the spec and its type."""

    index: int

    type: str = field(init=False, default="")

    @property
    def where(self) -> str:
        """``'layer 3 (conv)'``: the prefix of every message about this layer."""
        return _where(self.index, self.type)

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The normalised, JSON-friendly spec of this layer (round-trips through :func:`parse_layer`)."""


@dataclass(frozen=True)
class Conv(LayerSpec):
    """Periodic stride-1 convolution keeping the lattice size."""

    kernel: tuple[int, ...] = (1, 1)
    out: int = 1
    in_channels: int | None = None
    bias: bool = True
    type: str = field(init=False, default="conv")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "conv", "kernel": list(self.kernel)}
        if self.in_channels is not None:
            d["in"] = self.in_channels
        d.update(out=self.out, bias=self.bias)
        return d


@dataclass(frozen=True)
class LocalPool(LayerSpec):
    """Local average or max pooling (``mode``) with periodic windows."""

    mode: str = "avg"
    kernel: tuple[int, ...] = (2, 2)
    stride: tuple[int, ...] = (2, 2)
    type: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", f"{self.mode}_pool")

    @property
    def strided(self) -> bool:
        """True when some axis has stride > 1 (the layer then shrinks the lattice)."""
        return max(self.stride) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "kernel": list(self.kernel), "stride": list(self.stride)}


@dataclass(frozen=True)
class GlobalPool(LayerSpec):
    """Mean, max or sum over all lattice sites: ``(B, C, *shape) -> (B, C)``."""

    mode: str = "avg"
    type: str = field(init=False, default="global_pool")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "global_pool", "mode": self.mode}


@dataclass(frozen=True)
class Flatten(LayerSpec):
    """``(B, C, *shape) -> (B, C·V)``: fixes the lattice size."""

    type: str = field(init=False, default="flatten")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "flatten"}


@dataclass(frozen=True)
class Linear(LayerSpec):
    """Dense layer on pooled or flattened features."""

    out: int = 1
    in_features: int | None = None
    bias: bool = True
    type: str = field(init=False, default="linear")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "linear"}
        if self.in_features is not None:
            d["in"] = self.in_features
        d.update(out=self.out, bias=self.bias)
        return d


@dataclass(frozen=True)
class Activation(LayerSpec):
    """Pointwise nonlinearity ``name`` with its torch options."""

    name: str = "leaky_relu"
    options: tuple[tuple[str, Any], ...] = ()
    type: str = field(init=False, default="activation")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "activation", "name": self.name, **dict(self.options)}


@dataclass(frozen=True)
class Upsample(LayerSpec):
    """Nearest-neighbour upsampling by ``factor = (f_t, f_x)`` (one per axis): every site becomes an
    ``f_t × f_x`` block."""

    factor: tuple[int, ...] = (2, 2)
    mode: str = "nearest"
    type: str = field(init=False, default="upsample")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "upsample", "factor": list(self.factor), "mode": self.mode}


@dataclass(frozen=True)
class Unflatten(LayerSpec):
    """``(B, C·V) -> (B, C, *shape)`` on the fixed input lattice of an fl network."""

    channels: int | None = None
    type: str = field(init=False, default="unflatten")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "unflatten"}
        if self.channels is not None:
            d["channels"] = self.channels
        return d


def parse_layer(index: int, raw: Any, dims: int = 2) -> LayerSpec:
    """Parse and validate one layer spec (a mapping with a ``type`` key) of a network on a
    ``dims``-dimensional lattice."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"layer {index}: a layer spec must be a mapping with a 'type', got {raw!r}")
    layer_type = raw.get("type")
    if layer_type in ACTIVATIONS:
        raise SpecError(
            f"layer {index} ({layer_type}): unknown layer type {layer_type!r}; activations are "
            f"written {{type: activation, name: {layer_type}}}"
        )
    if layer_type not in LAYER_TYPES:
        raise SpecError(
            f"layer {index} ({layer_type}): unknown layer type {layer_type!r}; known: {', '.join(LAYER_TYPES)}"
        )
    if layer_type in ("lift_conv", "group_conv", "group_pool"):
        if dims != 2:
            raise SpecError(
                f"layer {index} ({layer_type}): the eqr layers act on 2D lattices only, this "
                f"network is {dims}-dimensional"
            )
        from scalar_ml.models.group import parse_group_layer  # imports this module

        return parse_group_layer(index, raw)
    where = _where(index, layer_type)
    if layer_type == "conv":
        _check_keys(
            raw,
            {"kernel", "out", "in", "bias"},
            where,
            "convolutions are stride 1 and periodically padded; strides belong to pooling layers",
        )
        in_channels = raw.get("in")
        return Conv(
            index,
            kernel=_int_tuple(_required(raw, "kernel", where), "kernel", where, dims),
            out=_positive_int(_required(raw, "out", where), "out", where),
            in_channels=None if in_channels is None else _positive_int(in_channels, "in", where),
            bias=_bool(raw.get("bias", True), "bias", where),
        )
    if layer_type in ("avg_pool", "max_pool"):
        _check_keys(raw, {"kernel", "stride"}, where)
        kernel = _int_tuple(_required(raw, "kernel", where), "kernel", where, dims)
        stride = raw.get("stride")
        stride_pair = kernel if stride is None else _int_tuple(stride, "stride", where, dims)
        return LocalPool(
            index, mode=layer_type.removesuffix("_pool"), kernel=kernel, stride=stride_pair
        )
    if layer_type == "global_pool":
        _check_keys(raw, {"mode"}, where)
        mode = _required(raw, "mode", where)
        if mode not in GLOBAL_POOL_MODES:
            raise SpecError(
                f"{where}: 'mode' must be one of {list(GLOBAL_POOL_MODES)}, got {mode!r}"
            )
        return GlobalPool(index, mode=mode)
    if layer_type == "flatten":
        _check_keys(raw, set(), where)
        return Flatten(index)
    if layer_type == "linear":
        _check_keys(raw, {"out", "in", "bias"}, where)
        in_features = raw.get("in")
        return Linear(
            index,
            out=_positive_int(_required(raw, "out", where), "out", where),
            in_features=None if in_features is None else _positive_int(in_features, "in", where),
            bias=_bool(raw.get("bias", True), "bias", where),
        )
    if layer_type == "upsample":
        _check_keys(raw, {"factor", "mode"}, where)
        mode = raw.get("mode", "nearest")
        if mode not in UPSAMPLE_MODES:
            raise SpecError(f"{where}: 'mode' must be one of {list(UPSAMPLE_MODES)}, got {mode!r}")
        factor = _int_tuple(_required(raw, "factor", where), "factor", where, dims)
        return Upsample(index, factor=factor, mode=mode)
    if layer_type == "unflatten":
        _check_keys(raw, {"channels"}, where)
        channels = raw.get("channels")
        return Unflatten(
            index,
            channels=None if channels is None else _positive_int(channels, "channels", where),
        )
    # activation
    name = _required(raw, "name", where)
    if name not in ACTIVATIONS:
        raise SpecError(f"{where}: unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    allowed = ACTIVATIONS[name][1]
    _check_keys(raw, {"name", *allowed}, where, f"options of {name!r}: {sorted(allowed) or 'none'}")
    options = tuple(sorted((k, v) for k, v in raw.items() if k not in ("type", "name")))
    return Activation(index, name=name, options=options)


def parse_input_size(value: Any, dims: int | None = None) -> tuple[int, ...] | None:
    """``None`` or ``[nt, nx]`` (``[N_0, …, N_{d-1}]``, time first) of positive ints; with ``dims``
    it must have that many entries."""
    if value is None:
        return None
    where = "model spec"
    if (
        not isinstance(value, list | tuple)
        or len(value) not in (2, 3, 4)
        or (dims is not None and len(value) != dims)
    ):
        form = "[nt, nx]" if dims in (None, 2) else f"a list of {dims} extents (time first)"
        raise SpecError(f"{where}: 'input_size' must be {form} or null, got {value!r}")
    return tuple(_positive_int(v, "input_size", where) for v in value)


def parse_dims(value: Any, input_size: Any = None) -> int:
    """The model spec's ``dims`` (2, 3 or 4): the value itself, else the length of ``input_size``,
    else 2.

    >>> parse_dims(None), parse_dims(None, [8, 8, 8]), parse_dims(3)
    (2, 3, 3)
    >>> parse_dims(5)
    Traceback (most recent call last):
    ...
    scalar_ml.models.spec.SpecError: model spec: 'dims' must be 2, 3 or 4 (the lattice dimension), got 5
    """
    if value is None:
        if isinstance(input_size, list | tuple) and len(input_size) in DIMS:
            return len(input_size)
        return 2
    if isinstance(value, bool) or value not in DIMS:
        raise SpecError(
            f"model spec: 'dims' must be 2, 3 or 4 (the lattice dimension), got {value!r}"
        )
    return int(value)


def parse_output(value: Any) -> str:
    """The model spec's ``output``: one of :data:`OUTPUTS`; ``None`` (key absent) is the default."""
    if value is None:
        return OUTPUTS[0]
    if value not in OUTPUTS:
        raise SpecError(f"model spec: 'output' must be one of {', '.join(OUTPUTS)}, got {value!r}")
    return str(value)
