"""Build a :class:`LatticeNet` from a model spec (see :mod:`scalar_ml.models.spec`).

Input: ``(B, in_channels, Nt, Nx)`` (channels ``[k_t, k_x, l_t, l_x]``, axis −2 time, axis −1
space). Integer inputs (the int32 configurations) are cast to the model's dtype; float inputs must
already have it (``model.double()`` for float64). Output: ``(B, out_features)``.

What the training code needs is on the module: ``family``, ``input_size`` (the required lattice
size for fl, ``None`` when any size works), ``in_channels``, ``out_features``, ``spec`` (normalised,
JSON-friendly, rebuilds the same architecture), ``ends_with_sigmoid`` and :meth:`LatticeNet.logits`
(the output before a final sigmoid, for ``BCEWithLogitsLoss``; ``forward`` returns probabilities).

Lattice-size checks happen once per new ``(Nt, Nx)`` in ``forward`` (integer arithmetic only): a
kernel larger than the lattice it meets raises :class:`~scalar_ml.models.spec.SpecError`; strided
pooling on an extent its stride does not divide keeps working (floor pooling, as in the seed's
100×5 "kink") and issues one :class:`FloorPoolingWarning` per model instance.

>>> import torch
>>> model = build_model({"family": "eq", "layers": [
...     {"type": "conv", "kernel": 2, "out": 8},
...     {"type": "activation", "name": "leaky_relu"},
...     {"type": "global_pool", "mode": "sum"},
...     {"type": "linear", "out": 1, "bias": False}]})
>>> model(torch.zeros(3, 4, 8, 8, dtype=torch.int32)).shape
torch.Size([3, 1])
>>> count_parameters(model)  # conv 4·8·2·2 + 8, linear 8
144
>>> model.family, model.input_size, model.out_features
('eq', None, 1)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scalar_ml.models.families import check_family
from scalar_ml.models.group import GroupConvSpec, GroupPool, build_group_layer, parse_group
from scalar_ml.models.layers import (
    GlobalPool2d,
    LatticePool2d,
    PeriodicConv2d,
    make_activation,
    pooled_extent,
)
from scalar_ml.models.spec import (
    MODEL_KEYS,
    Activation,
    Conv,
    Flatten,
    GlobalPool,
    LayerSpec,
    Linear,
    LocalPool,
    SpecError,
    format_size,
    parse_input_size,
    parse_layer,
    to_plain,
)
from scalar_ml.physics.symmetry import SymmetryGroup

__all__ = [
    "FloorPoolingWarning",
    "LatticeNet",
    "LatticeTrace",
    "build_model",
    "count_parameters",
    "trace_lattice",
]


class FloorPoolingWarning(UserWarning):
    """Strided pooling met a lattice extent its stride does not divide (sites are dropped)."""


@dataclass(frozen=True)
class LatticeTrace:
    """How a lattice of ``input_size`` travels through the lattice stage of a network.

    ``output_size`` is the lattice reaching the reduction layer; ``period`` the product of the
    pooling strides per axis; ``divisible`` per axis whether every strided pooling divided the
    extent it met (then shifts by multiples of ``period`` commute with the network); ``floor_notes``
    describe the poolings that dropped sites.
    """

    input_size: tuple[int, int]
    output_size: tuple[int, int]
    period: tuple[int, int]
    divisible: tuple[bool, bool]
    floor_notes: tuple[str, ...]


def trace_lattice(layers: Sequence[LayerSpec], input_size: tuple[int, int]) -> LatticeTrace:
    """Follow ``input_size`` through the lattice layers; raise if a kernel does not fit."""
    size = [int(input_size[0]), int(input_size[1])]
    period = [1, 1]
    divisible = [True, True]
    notes: list[str] = []
    for layer in layers:
        if isinstance(layer, GlobalPool | Flatten):
            break
        if not isinstance(layer, Conv | LocalPool | GroupConvSpec):
            continue
        if layer.kernel[0] > size[0] or layer.kernel[1] > size[1]:
            raise SpecError(
                f"{layer.where}: kernel {format_size(layer.kernel)} is larger than the "
                f"{format_size(size)} lattice it receives (input {format_size(input_size)})"
            )
        if isinstance(layer, LocalPool):
            for axis, axis_name in enumerate(("time", "space")):
                stride = layer.stride[axis]
                if stride > 1 and size[axis] % stride:
                    divisible[axis] = False
                    notes.append(
                        f"{layer.where}: stride {stride} does not divide the {axis_name} extent "
                        f"{size[axis]} of the {format_size(size)} lattice it receives"
                    )
                period[axis] *= stride
            size = [pooled_extent(size[a], layer.kernel[a], layer.stride[a]) for a in (0, 1)]
    return LatticeTrace(
        input_size=(int(input_size[0]), int(input_size[1])),
        output_size=(size[0], size[1]),
        period=(period[0], period[1]),
        divisible=(divisible[0], divisible[1]),
        floor_notes=tuple(notes),
    )


class LatticeNet(nn.Module):
    """A network built from layer specs: ``layers[i]`` is the module of spec layer ``i``."""

    def __init__(
        self,
        *,
        family: str,
        layer_specs: Sequence[LayerSpec],
        modules: Sequence[nn.Module],
        in_channels: int,
        input_size: tuple[int, int] | None,
        out_features: int,
        spec: dict[str, Any],
        group: SymmetryGroup | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(*modules)
        self.family = family
        # eqr: the point group the network is invariant under (scalar_ml.models.group); else None
        self.group = group
        self.in_channels = in_channels
        self.input_size = input_size if family == "fl" else None
        self.out_features = out_features
        self.spec = spec
        self.ends_with_sigmoid = isinstance(modules[-1], nn.Sigmoid)
        self._layer_specs = tuple(layer_specs)
        self._checked_sizes: set[tuple[int, int]] = set()
        self._warned_floor = False

    def extra_repr(self) -> str:
        size = format_size(self.input_size) if self.input_size else "any"
        return (
            f"family={self.family}, in_channels={self.in_channels}, input_size={size}, "
            f"out_features={self.out_features}"
        )

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters (the default dtype for a parameter-free network)."""
        for parameter in self.parameters():
            return parameter.dtype
        return torch.get_default_dtype()

    def trace(self, input_size: Sequence[int]) -> LatticeTrace:
        """:func:`trace_lattice` of this network's lattice stage for ``input_size = (nt, nx)``."""
        return trace_lattice(self._layer_specs, (int(input_size[0]), int(input_size[1])))

    def invariant_shifts(self, nt: int, nx: int) -> list[tuple[int, int]]:
        """Shifts ``(dt, dx)`` under which the output is invariant by construction on ``nt × nx``.

        eq: every shift. st: multiples of the stride product per axis, on axes where every
        stride divided the extent it met (otherwise only 0 on that axis). fl: only ``(0, 0)``.
        """
        if self.family == "fl":
            return [(0, 0)]
        trace = self.trace((nt, nx))
        steps = [
            p if ok else n for p, ok, n in zip(trace.period, trace.divisible, (nt, nx), strict=True)
        ]
        return [(dt, dx) for dt in range(0, nt, steps[0]) for dx in range(0, nx, steps[1])]

    def _check_size(self, size: tuple[int, int]) -> None:
        if self.input_size is not None and size != self.input_size:
            raise ValueError(
                f"this fl network was built for {format_size(self.input_size)} lattices and got a "
                f"{format_size(size)} input (flattening fixes the number of features; build it with "
                f"input_size: [{size[0]}, {size[1]}] or use an eq/st network)"
            )
        trace = self.trace(size)
        if trace.floor_notes and not self._warned_floor:
            self._warned_floor = True
            warnings.warn(
                f"floor pooling on a {format_size(size)} lattice (the seed's 100×5 'kink'): "
                + "; ".join(trace.floor_notes)
                + ". The last sites are dropped and the output is no longer invariant under shifts "
                "by the stride. (Warned once per model.)",
                FloorPoolingWarning,
                stacklevel=4,
            )

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"expected a torch.Tensor of shape (B, {self.in_channels}, Nt, Nx), got {type(x).__name__}"
            )
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input of shape (B, {self.in_channels}, Nt, Nx) (channels "
                f"[k_t, k_x, l_t, l_x], time then space), got {tuple(x.shape)}"
            )
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if size not in self._checked_sizes:
            self._check_size(size)
            self._checked_sizes.add(size)
        dtype = self.dtype
        if not x.is_floating_point():
            return x.to(dtype)
        if x.dtype != dtype:
            raise TypeError(
                f"input dtype {x.dtype} does not match the model's {dtype}; cast the input or the "
                f"model (e.g. model.to({x.dtype}))"
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, Nt, Nx) -> (B, out_features)``."""
        return self.layers(self._prepare(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the final sigmoid (use with ``BCEWithLogitsLoss``).

        Raises ``ValueError`` when the network does not end in a sigmoid (its ``forward`` is then
        already unbounded).
        """
        if not self.ends_with_sigmoid:
            raise ValueError(
                "logits() needs a network whose last layer is {type: activation, name: sigmoid}; "
                "this one's forward output is already unbounded"
            )
        x = self._prepare(x)
        for module in list(self.layers)[:-1]:
            x = module(x)
        return x


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (all of them, shared ones counted once)."""
    return sum(parameter.numel() for parameter in model.parameters())


def _build_activation(layer: Activation) -> nn.Module:
    try:
        return make_activation(layer.name, **dict(layer.options))
    except (TypeError, ValueError) as error:
        raise SpecError(f"{layer.where}: {error}") from error


def build_model(spec: Mapping[str, Any], *, dtype: torch.dtype | None = None) -> LatticeNet:
    """Build the network described by ``spec`` (a dict or an OmegaConf ``DictConfig``).

    ``dtype`` (default: torch's default dtype) sets the parameter dtype, e.g. ``torch.float64``.
    Raises :class:`~scalar_ml.models.spec.SpecError` naming the offending layer for bad specs.
    """
    raw = to_plain(spec)
    if not isinstance(raw, dict):
        raise SpecError(f"model spec must be a mapping with 'family' and 'layers', got {raw!r}")
    unknown = sorted(set(raw) - set(MODEL_KEYS))
    if unknown:
        raise SpecError(f"model spec: unknown key(s) {unknown}; allowed: {list(MODEL_KEYS)}")
    family = raw.get("family")
    if not isinstance(family, str):
        raise SpecError(f"model spec: 'family' must be one of eq, st, fl, eqr, got {family!r}")
    family = family.lower()
    layers_raw = raw.get("layers")
    if not isinstance(layers_raw, list):
        raise SpecError(f"model spec: 'layers' must be a list of layer specs, got {layers_raw!r}")
    in_channels = raw.get("in_channels", 4)
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise SpecError(
            f"model spec: 'in_channels' must be a positive integer, got {in_channels!r}"
        )
    input_size = parse_input_size(raw.get("input_size"))
    if family == "eqr":
        if raw.get("group") is None:
            raise SpecError(
                "model spec: family 'eqr' needs group: [generators], e.g. [P, TC] (the exact "
                "symmetries at any mu) or [S, T, P, C] (all point symmetries)"
            )
        group: SymmetryGroup | None = parse_group(raw["group"])
    elif raw.get("group") is not None:
        raise SpecError(f"model spec: 'group' belongs to family 'eqr', not {family!r}")
    else:
        group = None

    layers = [parse_layer(index, layer) for index, layer in enumerate(layers_raw)]
    check_family(family, layers)
    if family == "fl" and input_size is None:
        raise SpecError(
            "model spec: family 'fl' needs input_size: [nt, nx] (flattening fixes the lattice size)"
        )
    trace = trace_lattice(layers, input_size) if input_size is not None else None

    modules: list[nn.Module] = []
    normalised: list[dict[str, Any]] = []
    channels = in_channels
    features = 0
    features_origin = ""
    for layer in layers:
        if isinstance(layer, GroupConvSpec | GroupPool):  # family eqr (scalar_ml.models.group)
            module, channels, layer_dict = build_group_layer(layer, channels, group)
            modules.append(module)
            normalised.append(layer_dict)
            continue
        if isinstance(layer, Conv):
            if layer.in_channels is not None and layer.in_channels != channels:
                raise SpecError(
                    f"{layer.where}: in = {layer.in_channels} but the previous layers give {channels} channels"
                )
            modules.append(PeriodicConv2d(channels, layer.out, layer.kernel, bias=layer.bias))
            normalised.append({**layer.to_dict(), "in": channels})
            channels = layer.out
            continue
        if isinstance(layer, LocalPool):
            modules.append(LatticePool2d(layer.mode, layer.kernel, layer.stride))
        elif isinstance(layer, GlobalPool):
            modules.append(GlobalPool2d(layer.mode))
            features = channels
            features_origin = f"global_pool gives {channels} features (one per channel)"
        elif isinstance(layer, Flatten):
            assert trace is not None  # fl requires input_size, checked above
            nt, nx = trace.output_size
            modules.append(nn.Flatten())
            features = channels * nt * nx
            features_origin = (
                f"flatten gives {features} features ({channels} channels × {nt}×{nx} lattice, "
                f"from input {format_size(trace.input_size)})"
            )
        elif isinstance(layer, Linear):
            if layer.in_features is not None and layer.in_features != features:
                raise SpecError(f"{layer.where}: in = {layer.in_features} but {features_origin}")
            modules.append(nn.Linear(features, layer.out, bias=layer.bias))
            normalised.append({**layer.to_dict(), "in": features})
            features = layer.out
            features_origin = f"the previous linear layer gives {features} features"
            continue
        elif isinstance(layer, Activation):
            modules.append(_build_activation(layer))
        normalised.append(layer.to_dict())

    normalised_spec: dict[str, Any] = {
        key: raw[key] for key in ("name", "task", "description") if key in raw
    }
    normalised_spec.update(
        family=family,
        in_channels=in_channels,
        input_size=list(input_size) if input_size is not None else None,
        layers=normalised,
    )
    if group is not None:
        normalised_spec["group"] = list(group.generator_names)
    model = LatticeNet(
        family=family,
        layer_specs=layers,
        modules=modules,
        in_channels=in_channels,
        input_size=input_size,
        out_features=features,
        spec=normalised_spec,
        group=group,
    )
    if dtype is not None:
        if not dtype.is_floating_point:
            raise SpecError(f"dtype must be a floating dtype, got {dtype}")
        model = model.to(dtype)
    return model
