"""Build a :class:`LatticeNet` from a model spec (see :mod:`scalar_ml.models.spec`).

Input: ``(B, in_channels, Nt, Nx)`` (channels ``[k_t, k_x, l_t, l_x]``, axis −2 time, axis −1
space); a network with ``dims: d`` (3 or 4) takes ``(B, in_channels, N_0, …, N_{d-1})``, time
first, ``in_channels = 2d`` by default. Integer inputs (the int32 configurations) are cast to the
model's dtype; float inputs must already have it (``model.double()`` for float64). Output:
``(B, out_features)`` for ``output: configuration`` (the default), ``(B, out_features, *shape)`` on
the input's lattice for ``output: site``.

What the training code needs is on the module: ``family``, ``output`` (``configuration`` or
``site``), ``dims`` (the lattice dimension), ``input_size`` (the required lattice size for fl, ``None`` when any size works),
``in_channels``, ``out_features`` (features per configuration, or per site: the channels of a
site output), ``spec`` (normalised, JSON-friendly, rebuilds the same architecture),
``ends_with_sigmoid`` and :meth:`LatticeNet.logits` (the output before a final sigmoid, for
``BCEWithLogitsLoss``, per site for site outputs; ``forward`` returns probabilities),
:meth:`LatticeNet.symmetry_shifts` (the translations the network commutes with) and
:meth:`LatticeNet.trace` (does a lattice fit).

Lattice-size checks happen once per new lattice shape in ``forward`` (integer arithmetic only): a
kernel larger than the lattice it meets raises :class:`~scalar_ml.models.spec.SpecError`; strided
pooling on an extent its stride does not divide keeps working (floor pooling, as in the seed's
100×5 "kink") and issues one :class:`FloorPoolingWarning` per model instance, except in a network
whose lattice reaches the output (eq/st ``output: site``): upsampling could not give back the input
lattice there, so the trace raises a :class:`~scalar_ml.models.spec.SpecError` naming the pooling.

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
>>> site = build_model({"family": "st", "output": "site", "layers": [
...     {"type": "conv", "kernel": 2, "out": 8},
...     {"type": "max_pool", "kernel": 2, "stride": 2},
...     {"type": "conv", "kernel": 1, "out": 1},
...     {"type": "upsample", "factor": 2},
...     {"type": "activation", "name": "sigmoid"}]})
>>> site(torch.zeros(3, 4, 6, 10)).shape, site.output, site.out_features
(torch.Size([3, 1, 6, 10]), 'site', 1)
>>> site.symmetry_shifts(4, 2)
[(0, 0), (2, 0)]
>>> site(torch.zeros(1, 4, 6, 5))
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 1 (max_pool): stride 2 does not divide the space extent 5 of the 6×5 lattice it receives (input 6×5); a network whose output is a lattice field needs strides that divide the lattice, or upsampling cannot give back the input lattice
>>> cube = build_model({"family": "eq", "dims": 3, "layers": [
...     {"type": "conv", "kernel": 2, "out": 8, "bias": False},
...     {"type": "activation", "name": "leaky_relu"},
...     {"type": "global_pool", "mode": "sum"},
...     {"type": "linear", "out": 1, "bias": False}]})
>>> cube(torch.zeros(3, 6, 8, 6, 4)).shape, count_parameters(cube)  # conv 6·8·2·2·2, linear 8
(torch.Size([3, 1]), 392)
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from scalar_ml.models.families import check_family
from scalar_ml.models.group import GroupConvSpec, GroupPool, build_group_layer, parse_group
from scalar_ml.models.layers import GlobalPool as GlobalPoolModule
from scalar_ml.models.layers import (
    LatticePool,
    NearestUpsample,
    make_activation,
    periodic_conv,
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
    Unflatten,
    Upsample,
    format_size,
    parse_dims,
    parse_input_size,
    parse_layer,
    parse_output,
    to_plain,
)
from scalar_ml.physics.symmetry import SymmetryGroup
from scalar_ml.physics.theory import get_theory

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

    ``output_size`` is the lattice reaching the reduction layer (``global_pool``, or a
    ``flatten`` not followed by an ``unflatten``), else the output lattice (for site outputs equal
    to ``input_size``); ``period`` per axis the step of the shifts that commute with every layer:
    the product of the pooling strides for a network without upsampling, in general the least
    common multiple of the numerators of the scales (strides so far / upsampling factors so far,
    see :mod:`scalar_ml.models.layers`); ``divisible`` per axis whether every strided pooling
    divided the extent it met (then shifts by multiples of ``period`` commute with the network);
    ``floor_notes`` describe the poolings that dropped sites.
    """

    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    period: tuple[int, ...]
    divisible: tuple[bool, ...]
    floor_notes: tuple[str, ...]


def _axis_names(dims: int) -> tuple[str, ...]:
    """``("time", "space")`` in 2D; ``("time", "space 1", …)`` in d dimensions."""
    if dims == 2:
        return ("time", "space")
    return ("time", *(f"space {i}" for i in range(1, dims)))


def trace_lattice(layers: Sequence[LayerSpec], input_size: Sequence[int]) -> LatticeTrace:
    """Follow ``input_size`` through the lattice layers; raise if a kernel does not fit.

    When no layer reduces the lattice (no ``global_pool``, no ``flatten``), the lattice is the
    output: a strided pooling whose stride does not divide the extent it meets raises a
    :class:`~scalar_ml.models.spec.SpecError` naming it instead of floor pooling.
    """
    dims = len(input_size)
    axes = range(dims)
    size = [int(n) for n in input_size]
    period = [1] * dims
    scale = [Fraction(1)] * dims
    divisible = [True] * dims
    notes: list[str] = []
    lattice_output = not any(isinstance(layer, GlobalPool | Flatten) for layer in layers)
    for position, layer in enumerate(layers):
        if isinstance(layer, GlobalPool):
            break
        if isinstance(layer, Flatten):
            if any(isinstance(later, Unflatten) for later in layers[position + 1 :]):
                continue  # fl site output: the dense stage, then the unflatten restores the lattice
            break
        if isinstance(layer, Unflatten):
            size = [int(n) for n in input_size]
            continue
        if isinstance(layer, Upsample):
            size = [size[a] * layer.factor[a] for a in axes]
            scale = [scale[a] / layer.factor[a] for a in axes]
            continue
        if not isinstance(layer, Conv | LocalPool | GroupConvSpec):
            continue
        if len(layer.kernel) != dims:
            raise SpecError(
                f"{layer.where}: kernel {format_size(layer.kernel)} has {len(layer.kernel)} axes "
                f"but the lattice {format_size(input_size)} has {dims}"
            )
        if any(layer.kernel[a] > size[a] for a in axes):
            raise SpecError(
                f"{layer.where}: kernel {format_size(layer.kernel)} is larger than the "
                f"{format_size(size)} lattice it receives (input {format_size(input_size)})"
            )
        if isinstance(layer, LocalPool):
            for axis, axis_name in enumerate(_axis_names(dims)):
                stride = layer.stride[axis]
                if stride > 1 and size[axis] % stride:
                    note = (
                        f"{layer.where}: stride {stride} does not divide the {axis_name} extent "
                        f"{size[axis]} of the {format_size(size)} lattice it receives"
                    )
                    if lattice_output:
                        raise SpecError(
                            f"{note} (input {format_size(input_size)}); a network whose output "
                            "is a lattice field needs strides that divide the lattice, or "
                            "upsampling cannot give back the input lattice"
                        )
                    divisible[axis] = False
                    notes.append(note)
                scale[axis] *= stride
                period[axis] = math.lcm(period[axis], scale[axis].numerator)
            size = [pooled_extent(size[a], layer.kernel[a], layer.stride[a]) for a in axes]
    return LatticeTrace(
        input_size=tuple(int(n) for n in input_size),
        output_size=tuple(size),
        period=tuple(period),
        divisible=tuple(divisible),
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
        input_size: tuple[int, ...] | None,
        out_features: int,
        spec: dict[str, Any],
        output: str = "configuration",
        group: SymmetryGroup | None = None,
        dims: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(*modules)
        self.family = family
        self.output = output
        # the lattice dimension d: inputs are (B, in_channels, N_0, ..., N_{d-1})
        self.dims = dims
        # eqr: the point group the network is invariant under (scalar_ml.models.group); else None
        self.group = group
        self.in_channels = in_channels
        self.input_size = input_size if family == "fl" else None
        self.out_features = out_features
        self.spec = spec
        self.ends_with_sigmoid = isinstance(modules[-1], nn.Sigmoid)
        self._layer_specs = tuple(layer_specs)
        self._checked_sizes: set[tuple[int, ...]] = set()
        self._warned_floor = False

    def extra_repr(self) -> str:
        size = format_size(self.input_size) if self.input_size else "any"
        dims = "" if self.dims == 2 else f"dims={self.dims}, "
        return (
            f"family={self.family}, {dims}in_channels={self.in_channels}, input_size={size}, "
            f"out_features={self.out_features}, output={self.output}"
        )

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters (the default dtype for a parameter-free network)."""
        for parameter in self.parameters():
            return parameter.dtype
        return torch.get_default_dtype()

    def trace(self, input_size: Sequence[int]) -> LatticeTrace:
        """:func:`trace_lattice` of this network's lattice stage for ``input_size = (nt, nx)``
        (``(N_0, …, N_{d-1})``)."""
        if len(input_size) != self.dims:
            raise SpecError(
                f"this network is {self.dims}-dimensional and cannot take the "
                f"{format_size(input_size)} lattice"
            )
        return trace_lattice(self._layer_specs, tuple(int(n) for n in input_size))

    def invariant_shifts(self, *shape: int) -> list[tuple[int, ...]]:
        """Shifts ``(dt, dx)`` (one entry per axis) under which the output is invariant by
        construction on the lattice ``shape`` (``nt, nx`` in 2D).

        eq: every shift. st: multiples of the stride product per axis, on axes where every
        stride divided the extent it met (otherwise only 0 on that axis). fl: only ``(0, 0)``.
        A site output is equivariant, not invariant: ``ValueError`` pointing to
        :meth:`symmetry_shifts`.
        """
        if self.output == "site":
            raise ValueError(
                "a site-output network is translation equivariant (its output moves with the "
                "input), not invariant; use symmetry_shifts(nt, nx)"
            )
        return self.symmetry_shifts(*shape)

    def symmetry_shifts(self, *shape: int) -> list[tuple[int, ...]]:
        """Shifts ``T`` that commute with the network by construction on the lattice ``shape``
        (``nt, nx`` in 2D; a shift has one entry per axis).

        For a configuration output ``f(T x) = f(x)`` (invariance), for a site output
        ``f(T x) = T f(x)`` (equivariance); :func:`~scalar_ml.models.equivariance.translation_error`
        checks either. eq: every shift. st: multiples of the trace's ``period`` per axis (the stride
        product for an encoder followed by upsampling), on axes where every stride divided the
        extent it met (otherwise only 0 on that axis; for site outputs such a lattice is refused
        by the trace). fl: only ``(0, 0)``.
        """
        if self.family == "fl":
            return [(0,) * len(shape)]
        trace = self.trace(shape)
        steps = [
            p if ok else n for p, ok, n in zip(trace.period, trace.divisible, shape, strict=True)
        ]
        return list(itertools.product(*(range(0, n, s) for n, s in zip(shape, steps, strict=True))))

    def _check_size(self, size: tuple[int, ...]) -> None:
        if self.input_size is not None and size != self.input_size:
            raise ValueError(
                f"this fl network was built for {format_size(self.input_size)} lattices and got a "
                f"{format_size(size)} input (flattening fixes the number of features; build it with "
                f"input_size: [{', '.join(map(str, size))}] or use an eq/st network)"
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
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            if self.dims == 2:
                raise ValueError(
                    f"expected input of shape (B, {self.in_channels}, Nt, Nx) (channels "
                    f"[k_t, k_x, l_t, l_x], time then space), got {tuple(x.shape)}"
                )
            raise ValueError(
                f"expected input of shape (B, {self.in_channels}, N_0, ..., N_{self.dims - 1}) "
                f"(a {self.dims}-dimensional lattice, time first), got {tuple(x.shape)}"
            )
        size = tuple(int(n) for n in x.shape[2:])
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
        """``(B, in_channels, *shape) -> (B, out_features)``, or ``(B, out_features, *shape)`` for
        site outputs."""
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
    dims = parse_dims(raw.get("dims"), raw.get("input_size"))
    in_channels = raw.get("in_channels", get_theory().n_channels(dims))
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise SpecError(
            f"model spec: 'in_channels' must be a positive integer, got {in_channels!r}"
        )
    input_size = parse_input_size(raw.get("input_size"), dims)
    output = parse_output(raw.get("output"))
    if family == "eqr" and dims != 2:
        raise SpecError(
            f"model spec: family 'eqr' acts on 2D lattices only (its point group is that of the "
            f"2D lattice), got dims = {dims}"
        )
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

    layers = [parse_layer(index, layer, dims) for index, layer in enumerate(layers_raw)]
    check_family(family, layers, output, dims=dims)
    if family == "fl" and input_size is None:
        form = "[nt, nx]" if dims == 2 else f"[{', '.join(f'N_{a}' for a in range(dims))}]"
        raise SpecError(
            f"model spec: family 'fl' needs input_size: {form} (flattening fixes the lattice size)"
        )
    if input_size is not None:  # a kernel that does not fit the given lattice raises here
        trace_lattice(layers, input_size)

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
            modules.append(periodic_conv(channels, layer.out, layer.kernel, bias=layer.bias))
            normalised.append({**layer.to_dict(), "in": channels})
            channels = layer.out
            continue
        if isinstance(layer, LocalPool):
            modules.append(LatticePool(layer.mode, layer.kernel, layer.stride))
        elif isinstance(layer, GlobalPool):
            modules.append(GlobalPoolModule(layer.mode))
            features = channels
            features_origin = f"global_pool gives {channels} features (one per channel)"
        elif isinstance(layer, Flatten):
            assert input_size is not None  # fl requires input_size, checked above
            flattened = trace_lattice(layers[: layer.index + 1], input_size)
            modules.append(nn.Flatten())
            features = channels * math.prod(flattened.output_size)
            features_origin = (
                f"flatten gives {features} features ({channels} channels × "
                f"{format_size(flattened.output_size)} lattice, from input "
                f"{format_size(input_size)})"
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
        elif isinstance(layer, Upsample):
            modules.append(NearestUpsample(layer.factor))
        elif isinstance(layer, Unflatten):
            assert input_size is not None  # fl requires input_size, checked above
            sites = math.prod(input_size)
            if features % sites:
                raise SpecError(
                    f"{layer.where}: {features_origin}, not a multiple of the "
                    f"{format_size(input_size)} = {sites} sites of the input lattice"
                )
            if layer.channels is not None and layer.channels * sites != features:
                raise SpecError(
                    f"{layer.where}: channels = {layer.channels} but {features_origin} "
                    f"= {features // sites} channels × {format_size(input_size)} sites"
                )
            channels = features // sites
            modules.append(nn.Unflatten(1, (channels, *input_size)))
            normalised.append({**layer.to_dict(), "channels": channels})
            continue
        normalised.append(layer.to_dict())

    normalised_spec: dict[str, Any] = {
        key: raw[key] for key in ("name", "task", "description") if key in raw
    }
    normalised_spec.update(family=family, output=output)
    if dims != 2:  # 2D specs stay as they were (their checkpoints are unchanged)
        normalised_spec["dims"] = dims
    normalised_spec.update(
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
        out_features=channels if output == "site" else features,
        spec=normalised_spec,
        output=output,
        group=group,
        dims=dims,
    )
    if dtype is not None:
        if not dtype.is_floating_point:
            raise SpecError(f"dtype must be a floating dtype, got {dtype}")
        model = model.to(dtype)
    return model
