r"""Family ``eqr``: lattice networks equivariant under translations *and* a group of point symmetries.

The point symmetries (reflections ``T``, ``P``, the swap ``S``, charge conjugation ``C``; see
:mod:`scalar_ml.physics.symmetry`) act on configurations and on feature maps. A network of this
family is a group-equivariant CNN (G-CNN) for the group ``G = Z² ⋊ H`` of translations and a finite
point group ``H`` named in the model spec by its generators (``group: [P, TC]``):

* **lifting convolution** ``lift_conv``: configurations ``(B, 4, Nt, Nx)`` →
  regular feature maps ``(B, out, |H|, Nt, Nx)``;
* **group convolution** ``group_conv``: regular → regular, ``(B, in, |H|, ·)`` → ``(B, out, |H|, ·)``;
* **group pooling** ``group_pool``: mean, max or sum over the ``|H|`` axis → invariant site features
  ``(B, C, Nt, Nx)``, followed by the ``global_pool`` over sites and dense layers.

**Regular representation.** ``h ∈ H`` acts on a feature map ``F[c, g](x)`` (channel ``c``, group
element ``g``, site ``x``) by ``(h·F)[c, g](x) = F[c, h⁻¹g](A_h⁻¹ x)``, where ``A_h`` is the site
map of ``h`` (``C`` moves no site). The input representation is the physical one: ``k`` channels are
pseudo-vectors (reflected links move by one site and change sign, ``C`` flips them), ``l`` channels
move without sign (derivation in :mod:`scalar_ml.physics.symmetry`).

**Construction (exact equivariance).** Let ``Φ_w`` be an ordinary periodic convolution with weight
``w`` (kernel ``k``, anchored as in :mod:`scalar_ml.models.layers`). Both layers compute, for
every ``h ∈ H``,

.. math::

    F_{\rm out}[\,\cdot\,, h] = h \cdot \Phi_w\big(h^{-1} \cdot F_{\rm in}\big),

with ``h⁻¹·`` the input representation and ``h·`` the site action on the output. For ``g ∈ H``:
``F_out(g·F_in)[h] = h·Φ(h⁻¹g·F_in) = g·(g⁻¹h)·Φ((g⁻¹h)⁻¹·F_in) = g·F_out(F_in)[g⁻¹h]``, which is
the regular representation: the layer is equivariant, and since the input maps are affine with a
position-independent link shift, ``h·Φ(h⁻¹·)`` is again translation equivariant. It is therefore a
periodic convolution whose kernel ``K_h`` is ``w`` moved by ``h``: the coefficient of
``F_in[c](x + d)`` is ``σ·w[c', j]`` when ``h⁻¹`` maps a unit at ``(c, d)`` to ``σ`` at the
kernel slot ``(c', j)``. These gathers (index and sign per ``h``) are computed once, at
construction, by applying the representation to an array of integer labels, so they use exactly
the maps the physics tests check. Each copy ``K_h`` is supported on a moved window: a 2×2 kernel
reflected through its site covers the offsets −1 … 0 instead of 0 … 1; a lifting kernel also sees
the reflected links one site further back (its copies need windows up to 2×2 for a 1×1 kernel and
3×3 for a 2×2 one). One ``conv2d`` call with ``out·|H|`` output channels and a window that fits
every copy evaluates all of them, and each copy's output is shifted by its window's origin. Only ``w`` is a parameter:
``out·in·(|H| for group_conv)·k_t·k_x`` weights, plus one bias per output channel shared by the
``|H|`` copies (a constant field is invariant, so the shared bias keeps equivariance).

Group pooling then gives site fields that move as scalars, and the global pool makes the output
invariant under all of ``G``. With ``S`` in ``H`` the network is also defined on ``Nt ≠ Nx``; there
``S`` maps an ``Nt × Nx`` input to an ``Nx × Nt`` one and the output is the same.

**Family rules** (:func:`check_eqr`): layer 0 is the one ``lift_conv`` (a nonlinearity before it
would break the sign representation of ``k``); then ``group_conv`` and activations; one
``group_pool``; activations; one ``global_pool``; linear layers and activations. Plain ``conv``,
local pooling and ``flatten`` are refused (a plain kernel is not moved by the group).

>>> import torch
>>> from scalar_ml.models.builder import build_model, count_parameters
>>> net = build_model({"family": "eqr", "group": ["P", "TC"], "layers": [
...     {"type": "lift_conv", "kernel": 2, "out": 4, "bias": False},
...     {"type": "activation", "name": "leaky_relu"},
...     {"type": "group_conv", "kernel": 2, "out": 4, "bias": False},
...     {"type": "activation", "name": "leaky_relu"},
...     {"type": "group_pool", "mode": "avg"},
...     {"type": "global_pool", "mode": "sum"},
...     {"type": "linear", "out": 1, "bias": False}]}, dtype=torch.float64)
>>> count_parameters(net)  # 4·4·2·2 + 4·4·4·2·2 + 4
324
>>> x = torch.randint(-2, 3, (3, 4, 6, 5)).double()
>>> from scalar_ml.physics.symmetry import element
>>> float((net(element("TC").apply(x)) - net(x)).abs().max().detach()) < 1e-12
True
>>> build_model({"family": "eqr", "group": ["P"], "layers": [
...     {"type": "activation", "name": "tanh"}, {"type": "lift_conv", "kernel": 1, "out": 2}]})
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 0 (activation): family 'eqr' starts with its lift_conv (the k channels change sign under reflections and C; a nonlinearity before the lifting breaks that)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalar_ml.models.layers import GLOBAL_POOL_MODES, _circular_pad
from scalar_ml.models.spec import (
    Activation,
    GlobalPool,
    LayerSpec,
    Linear,
    SpecError,
    _bool,
    _check_keys,
    _int_pair,
    _positive_int,
    _required,
    _where,
)
from scalar_ml.physics.symmetry import LatticeSymmetry, SymmetryGroup, generate_group

__all__ = [
    "GROUP_LAYER_TYPES",
    "GROUP_POOL_MODES",
    "GroupConv",
    "GroupConv2d",
    "GroupConvSpec",
    "GroupPool",
    "GroupPool2d",
    "LiftConv",
    "build_group_layer",
    "check_eqr",
    "configuration_action",
    "group_kernel_gather",
    "parse_group",
    "parse_group_layer",
    "regular_action",
]

#: Layer types of family eqr (also listed in :data:`scalar_ml.models.spec.LAYER_TYPES`).
GROUP_LAYER_TYPES: tuple[str, ...] = ("lift_conv", "group_conv", "group_pool")
GROUP_POOL_MODES: tuple[str, ...] = GLOBAL_POOL_MODES  # avg, max, sum over the group axis

#: ``(g, array) -> g·array``: how a layer's input transforms.
Action = Callable[[LatticeSymmetry, Any], Any]


# -- the group named in a model spec ------------------------------------------------------------------
def parse_group(value: Any) -> SymmetryGroup:
    """The point group generated by the names in ``value`` (a non-empty list, e.g. ``["P", "TC"]``).

    >>> parse_group(["P", "TC"]).names
    ('1', 'P', 'TC', 'TPC')
    >>> parse_group("P")
    Traceback (most recent call last):
    ...
    scalar_ml.models.spec.SpecError: model spec: 'group' must be a non-empty list of generator names such as [P, TC], got 'P'
    """
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise SpecError(
            "model spec: 'group' must be a non-empty list of generator names such as [P, TC], "
            f"got {value!r}"
        )
    try:
        return generate_group(value)
    except ValueError as error:
        raise SpecError(f"model spec: group {list(value)}: {error}") from error


# -- layer specs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupConvSpec(LayerSpec):
    """A convolution of family eqr: base kernel, output channels per group element, bias."""

    kernel: tuple[int, int] = (1, 1)
    out: int = 1
    in_channels: int | None = None
    bias: bool = True

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "kernel": list(self.kernel)}
        if self.in_channels is not None:
            d["in"] = self.in_channels
        d.update(out=self.out, bias=self.bias)
        return d


@dataclass(frozen=True)
class LiftConv(GroupConvSpec):
    """Lifting convolution: configurations ``[k_t, k_x, l_t, l_x]`` → regular feature maps."""

    type: str = field(init=False, default="lift_conv")


@dataclass(frozen=True)
class GroupConv(GroupConvSpec):
    """Group convolution: regular feature maps → regular feature maps (``in``, ``out`` per element)."""

    type: str = field(init=False, default="group_conv")


@dataclass(frozen=True)
class GroupPool(LayerSpec):
    """Mean, max or sum over the group axis: ``(B, C, |H|, Nt, Nx) -> (B, C, Nt, Nx)``."""

    mode: str = "avg"
    type: str = field(init=False, default="group_pool")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "group_pool", "mode": self.mode}


def parse_group_layer(index: int, raw: Mapping[str, Any]) -> LayerSpec:
    """Parse ``lift_conv``, ``group_conv`` or ``group_pool`` (called by :func:`~.spec.parse_layer`)."""
    layer_type = raw.get("type")
    where = _where(index, str(layer_type))
    if layer_type == "group_pool":
        _check_keys(raw, {"mode"}, where)
        mode = _required(raw, "mode", where)
        if mode not in GROUP_POOL_MODES:
            raise SpecError(
                f"{where}: 'mode' must be one of {list(GROUP_POOL_MODES)}, got {mode!r}"
            )
        return GroupPool(index, mode=mode)
    if layer_type not in ("lift_conv", "group_conv"):
        raise SpecError(f"{where}: not a group layer type; known: {', '.join(GROUP_LAYER_TYPES)}")
    _check_keys(
        raw,
        {"kernel", "out", "in", "bias"},
        where,
        "group convolutions are stride 1 and periodically padded",
    )
    in_channels = raw.get("in")
    cls = LiftConv if layer_type == "lift_conv" else GroupConv
    return cls(
        index,
        kernel=_int_pair(_required(raw, "kernel", where), "kernel", where),
        out=_positive_int(_required(raw, "out", where), "out", where),
        in_channels=None if in_channels is None else _positive_int(in_channels, "in", where),
        bias=_bool(raw.get("bias", True), "bias", where),
    )


# -- family rules ----------------------------------------------------------------------------------------
def check_eqr(layers: Sequence[LayerSpec]) -> int:
    """Validate an eqr layer list (module docstring); return the index of its ``global_pool``."""
    if not layers:
        raise SpecError("model spec: family 'eqr' needs at least one layer, got an empty list")
    if not isinstance(layers[0], LiftConv):
        raise SpecError(
            f"{layers[0].where}: family 'eqr' starts with its lift_conv (the k channels change "
            "sign under reflections and C; a nonlinearity before the lifting breaks that)"
            if isinstance(layers[0], Activation)
            else f"{layers[0].where}: family 'eqr' starts with a lift_conv (configurations -> "
            "regular feature maps)"
        )
    pool: GroupPool | None = None
    reduction: GlobalPool | None = None
    for layer in layers[1:]:
        if isinstance(layer, Activation):
            continue
        if isinstance(layer, GroupConv):
            if pool is not None:
                raise SpecError(
                    f"{layer.where}: group convolution after the group_pool at layer {pool.index} "
                    "(the features there are invariant site fields; convolve before pooling)"
                )
            continue
        if isinstance(layer, LiftConv):
            raise SpecError(
                f"{layer.where}: a second lift_conv (the first is layer 0); later layers are "
                "group_conv"
            )
        if isinstance(layer, GroupPool):
            if pool is not None:
                raise SpecError(
                    f"{layer.where}: a second group_pool (the first is layer {pool.index})"
                )
            pool = layer
            continue
        if isinstance(layer, GlobalPool):
            if pool is None:
                raise SpecError(
                    f"{layer.where}: global_pool before any group_pool; family 'eqr' pools over "
                    "the group first (group_pool), then over the sites"
                )
            if reduction is not None:
                raise SpecError(
                    f"{layer.where}: a second global_pool (the first is layer {reduction.index}); "
                    "family 'eqr' reduces the lattice exactly once"
                )
            reduction = layer
            continue
        if isinstance(layer, Linear):
            if reduction is None:
                raise SpecError(
                    f"{layer.where}: dense layer before the global_pool; linear layers act on the "
                    "reduced features"
                )
            continue
        raise SpecError(
            f"{layer.where}: {layer.type} is not allowed in family 'eqr' (a plain kernel or "
            "window is not moved by the point group; use group_conv, and no local pooling or "
            "flatten)"
        )
    if pool is None:
        raise SpecError(
            "model spec: family 'eqr' needs one group_pool after the group convolutions; found none"
        )
    if reduction is None:
        raise SpecError(
            "model spec: family 'eqr' needs one global_pool after the group_pool; found none"
        )
    return reduction.index


# -- representations -----------------------------------------------------------------------------------
def configuration_action(g: LatticeSymmetry, x: Any) -> Any:
    """The physical action on ``(..., 4, Nt, Nx)`` (``g.apply``): the input of a lift_conv."""
    return g.apply(x)


def regular_action(group: SymmetryGroup) -> Action:
    """The regular representation on ``(..., C, |H|, Nt, Nx)``: ``(g·F)[c, k](x) = F[c, g⁻¹k](A⁻¹x)``.

    >>> import numpy as np
    >>> from scalar_ml.physics.symmetry import FIXED_MU_GROUP, element
    >>> act = regular_action(FIXED_MU_GROUP)
    >>> feats = np.arange(4).reshape(1, 4, 1, 1) * np.ones((1, 4, 2, 3))  # F[0, k] = k everywhere
    >>> act(element("P"), feats)[0, :, 0, 0].tolist()  # P·F[k] = F[P k]: 1 <-> P, TC <-> TPC
    [1.0, 0.0, 3.0, 2.0]
    """
    elements = group.elements
    perms = {
        g: [group.index(g.inverse() * k) for k in elements] for g in elements
    }  # perms[g][k] = index of g⁻¹ k

    def act(g: LatticeSymmetry, x: Any) -> Any:
        if g not in perms:
            raise ValueError(f"{g.name} is not in the group {{{', '.join(group.names)}}}")
        if tuple(x.shape)[-3:-2] != (len(elements),):
            raise ValueError(
                f"regular feature maps must have shape (..., C, {len(elements)}, Nt, Nx), "
                f"got {tuple(x.shape)}"
            )
        return g.apply_sites(x[..., perms[g], :, :])

    return act


@dataclass(frozen=True)
class KernelGather:
    """Where the ``|H|`` moved kernels take their entries from (see :func:`group_kernel_gather`).

    ``index[h, c, e_t, e_x]`` is the flat position in the base weight ``w[o].ravel()`` (or
    ``size``, an appended zero) and ``sign`` the factor, for input channel ``c`` (flattened) and
    window position ``e``. Copy ``h`` sits in a ``window = (w_t, w_x)`` whose position ``e`` is the
    offset ``d = e + origin[h]`` from the output site: every copy gets the smallest window that
    holds its own support, all windows have the size of the largest one.
    """

    index: np.ndarray
    sign: np.ndarray
    window: tuple[int, int]
    origin: np.ndarray  # (|H|, 2) int64: (t, x) offset of window position 0, per copy
    size: int


def group_kernel_gather(
    group: SymmetryGroup,
    action: Action,
    in_shape: tuple[int, ...],
    kernel: tuple[int, int],
) -> KernelGather:
    """The gathers that build ``K_h``, the kernel of ``h·Φ_w(h⁻¹·)``, from ``w`` (module docstring).

    ``action`` is the input representation acting on ``in_shape + (Nt, Nx)`` integer arrays;
    ``kernel`` the base kernel ``(k_t, k_x)``, anchored at ``l = (k − 1) // 2`` as in
    :class:`~scalar_ml.models.layers.PeriodicConv2d`. Labels ``1 … n`` on an ``L × L`` patch (``L``
    larger than any offset, so nothing wraps) are moved by ``h⁻¹``; the label and sign found at a
    kernel slot say which input entry (channel, offset) that slot of ``w`` multiplies in ``K_h``.
    """
    kt, kx = kernel
    n_channels = int(np.prod(in_shape))
    size = n_channels * kt * kx
    patch = 2 * max(kt, kx) + 5
    labels = np.arange(1, n_channels * patch * patch + 1, dtype=np.int64)
    labels = labels.reshape((*in_shape, patch, patch))
    lt, lx = (kt - 1) // 2, (kx - 1) // 2
    rows_t = (np.arange(kt) - lt) % patch
    rows_x = (np.arange(kx) - lx) % patch
    sources = []  # per h: (dest channel, dest offset t, dest offset x, slot, sign)
    for h in group.elements:
        moved = np.asarray(action(h.inverse(), labels)).reshape(n_channels, patch, patch)
        at_slots = moved[:, rows_t][:, :, rows_x]  # (C, kt, kx): what each slot of w multiplies
        flat = np.abs(at_slots).ravel() - 1
        if np.any(flat < 0):
            raise AssertionError("the representation is not a signed permutation")
        channel, dt, dx = np.unravel_index(flat, (n_channels, patch, patch))
        dt = np.where(dt > patch // 2, dt - patch, dt)
        dx = np.where(dx > patch // 2, dx - patch, dx)
        sources.append((channel, dt, dx, np.arange(size), np.sign(at_slots).ravel()))
    origin = np.array([(s[1].min(), s[2].min()) for s in sources], dtype=np.int64)
    extent = np.array([(s[1].max(), s[2].max()) for s in sources]) - origin + 1
    window = (int(extent[:, 0].max()), int(extent[:, 1].max()))
    index = np.full((len(group), n_channels, *window), size, dtype=np.int64)
    sign = np.zeros((len(group), n_channels, *window), dtype=np.int64)
    for h, (channel, dt, dx, slot, sgn) in enumerate(sources):
        dest = (h, channel, dt - origin[h, 0], dx - origin[h, 1])
        if np.any(index[dest] != size):
            raise AssertionError("two kernel slots map to one entry: not a permutation")
        index[dest] = slot
        sign[dest] = sgn
    return KernelGather(index=index, sign=sign, window=window, origin=origin, size=size)


# -- torch layers ----------------------------------------------------------------------------------------
class GroupConv2d(nn.Module):
    """Lifting or group convolution: for every ``h``, ``h·Φ_w(h⁻¹·input)`` (module docstring).

    Args:
        group: the point group ``H``.
        in_channels: 4 for lifting (``lifting=True``), else feature channels per group element.
        out_channels: feature channels per group element of the output.
        kernel_size: base kernel ``(k_t, k_x)``.
        lifting: input is configurations (physical representation) instead of regular features.
        bias: one bias per output channel, shared by its ``|H|`` copies.

    Input ``(B, 4, Nt, Nx)`` (lifting) or ``(B, in, |H|, Nt, Nx)``; output ``(B, out, |H|, Nt, Nx)``.
    """

    def __init__(
        self,
        group: SymmetryGroup,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        *,
        lifting: bool,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if lifting and in_channels != 4:
            raise ValueError(
                f"a lifting convolution takes the 4 configuration channels, got {in_channels}"
            )
        self.group = group
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))
        self.lifting = lifting
        in_shape = (4,) if lifting else (in_channels, len(group))
        action = configuration_action if lifting else regular_action(group)
        gather = group_kernel_gather(group, action, in_shape, self.kernel_size)
        self.window = gather.window
        # conv2d on the input padded by window − 1 on the right gives y_h(x) = Σ_e K_h[e] in(x + e);
        # copy h is y_h(x + origin_h), a shift per copy (none when all origins agree)
        self.pad_t = (0, self.window[0] - 1)
        self.pad_x = (0, self.window[1] - 1)
        self._origin = gather.origin
        self._shifted = bool(np.any(gather.origin != gather.origin[0]))
        self.weight = nn.Parameter(torch.empty(out_channels, *in_shape, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("_index", torch.from_numpy(gather.index.reshape(-1)), persistent=False)
        self.register_buffer(
            "_sign",
            torch.from_numpy(gather.sign.reshape(-1)).to(torch.get_default_dtype()),
            persistent=False,
        )
        self._in_flat = int(np.prod(in_shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As :class:`torch.nn.Conv2d`: Kaiming-uniform weights, bias ``U(±1/√fan_in)``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self._in_flat * self.kernel_size[0] * self.kernel_size[1]
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def kernels(self) -> torch.Tensor:
        """The moved kernels ``(out·|H|, in_flat, w_t, w_x)``, output channel ``o·|H| + h``.

        Window position ``e`` of copy ``h`` is the offset ``e + origin_h`` (see :class:`KernelGather`).
        """
        w = self.weight.reshape(self.out_channels, -1)
        w = torch.cat([w, w.new_zeros(self.out_channels, 1)], dim=1)
        k = w[:, self._index] * self._sign.to(w.dtype)
        return k.reshape(self.out_channels * len(self.group), self._in_flat, *self.window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_group = len(self.group)
        batch, nt, nx = x.shape[0], x.shape[-2], x.shape[-1]
        x = x.reshape(batch, self._in_flat, nt, nx)
        x = _circular_pad(x, self.pad_t, self.pad_x)
        bias = None if self.bias is None else self.bias.repeat_interleave(n_group)
        out = F.conv2d(x, self.kernels(), bias).reshape(batch, self.out_channels, n_group, nt, nx)
        if not self._shifted:
            shift = (-int(self._origin[0, 0]), -int(self._origin[0, 1]))
            return out.roll(shift, dims=(-2, -1)) if any(shift) else out
        # out[..., h, t, x] <- y_h(t + origin_t[h], x + origin_x[h])
        copies = [
            out[:, :, h].roll((-int(dt), -int(dx)), dims=(-2, -1))
            for h, (dt, dx) in enumerate(self._origin)
        ]
        return torch.stack(copies, dim=2)

    def extra_repr(self) -> str:
        kind = "lifting" if self.lifting else "group"
        return (
            f"{kind}, group=<{', '.join(self.group.generator_names)}> (|H| = {len(self.group)}), "
            f"in={self.in_channels}, out={self.out_channels}, kernel_size={self.kernel_size}, "
            f"window={self.window}, bias={self.bias is not None}, periodic"
        )


class GroupPool2d(nn.Module):
    """Mean, max or sum over the group axis: ``(B, C, |H|, Nt, Nx) -> (B, C, Nt, Nx)``."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in GROUP_POOL_MODES:
            raise ValueError(f"group pooling mode must be one of {GROUP_POOL_MODES}, got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "avg":
            return x.mean(dim=2)
        if self.mode == "sum":
            return x.sum(dim=2)
        return x.amax(dim=2)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


def build_group_layer(
    layer: LayerSpec, channels: int, group: SymmetryGroup | None
) -> tuple[nn.Module, int, dict[str, Any]]:
    """Module, output channels and normalised spec of a group layer (used by the builder)."""
    if group is None:  # check_family refuses group layers outside eqr first
        raise SpecError(f"{layer.where}: group layers need family 'eqr' and a 'group'")
    if isinstance(layer, GroupPool):
        return GroupPool2d(layer.mode), channels, layer.to_dict()
    if not isinstance(layer, GroupConvSpec):
        raise SpecError(f"{layer.where}: not a group layer")
    if layer.in_channels is not None and layer.in_channels != channels:
        raise SpecError(
            f"{layer.where}: in = {layer.in_channels} but the previous layers give {channels} "
            "channels" + (" (the configuration's k_t, k_x, l_t, l_x)" if channels == 4 else "")
        )
    lifting = isinstance(layer, LiftConv)
    module = GroupConv2d(group, channels, layer.out, layer.kernel, lifting=lifting, bias=layer.bias)
    return module, layer.out, {**layer.to_dict(), "in": channels}
