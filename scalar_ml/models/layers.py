"""Lattice layers: periodic convolution, periodic local pooling, global pooling, upsampling, activations.

All lattice tensors are ``(B, C, Nt, Nx)``: axis −2 is time, axis −1 is space, both periodic
(SPEC §1); on a d-dimensional lattice (d = 3, 4) ``(B, C, N_0, …, N_{d-1})``, time first. The
layers here are the only places where the lattice geometry enters a network; every rule below
holds per axis, in any dimension.

**Convolutions in d dimensions.** 2D and 3D use torch's ``Conv2d``/``Conv3d`` after circular
padding (:class:`PeriodicConv2d`, :class:`PeriodicConv3d`). torch has no ``Conv4d``:
:class:`PeriodicConv4d` holds a weight ``(out, in, k_0, k_1, k_2, k_3)`` and computes the 4D
periodic convolution as the sum over the time offsets ``i`` of 3D convolutions of the time slices
``t + i − l_0`` with the weight slice ``w[:, :, i]``, all at once as one ``conv3d`` on the
``(B·N_0, k_0·C, …)`` stack of shifted slices; it is tested against a direct sum over all kernel
offsets. Local pooling in 4D pools the three space axes with ``avg_pool3d``/``max_pool3d`` and then
the time axis (an average or maximum over a product window is the average or maximum over time of
those over space).

**Periodic padding rule.** A window of extent ``k`` moved with stride ``s`` along an axis gets
``p = max(k − s, 0)`` sites of circular padding on that axis, split as ``left = p // 2`` and
``right = p − left``. For stride 1 (every convolution) this is ``p = k − 1``: odd kernels are
centred, even kernels pad one side more, e.g. ``k = 2`` pads nothing on the left and one site on
the right, so output site ``t`` sees input sites ``t`` and ``t + 1 (mod Nt)``. The lattice size is
kept for *any* kernel size:

    out[c', t, x] = b[c'] + Σ_{c,i,j} w[c', c, i, j] · in[c, (t + i − l_t) mod Nt, (x + j − l_x) mod Nx]

with ``l = (k − 1) // 2``. Because every site is treated alike, a periodic convolution commutes with
lattice translations ``T_a`` (``torch.roll``): ``conv(T_a x) = T_a conv(x)`` (equivariance), and so do
pointwise activations.

**Local pooling** with stride ``s > 1`` maps an axis of extent ``n`` to ``⌊n / s⌋`` sites (with the
rule above, windows wider than the stride wrap around periodically; for the seed's ``k = s = 2``
there is no padding at all and the layer equals ``torch.nn.AvgPool2d(2, 2)``). When ``s`` divides
``n``, a translation by ``s`` becomes a translation by 1 of the pooled lattice, so a network with
strided pooling is invariant only under shifts by multiples of the product of its strides. When
``s`` does not divide ``n`` the last sites are dropped (floor pooling, the seed's 100×5 "kink")
and even that reduced symmetry is lost. Stride-1 pooling keeps the lattice size and is equivariant.

**Global pooling** (mean, max or sum over all sites) is invariant under every permutation of the
sites, in particular under translations. An equivariant stack followed by global pooling is
therefore exactly translation invariant, on any lattice size. Mean and max pooling are *intensive*
(tiling the lattice leaves them unchanged); sum pooling is *extensive* (tiling the lattice ``m``
times multiplies it by ``m``), which is what a counting network needs.

**Upsampling** (:class:`NearestUpsample2d`, the only upsampling a site-output network may use) by
an integer factor ``f`` per axis copies every site to an ``f_t × f_x`` block:

    out[c, t, x] = in[c, ⌊t / f_t⌋, ⌊x / f_x⌋],   (h, w) -> (f_t·h, f_x·w).

It is the right inverse of the seed's ``k = s = f`` pooling (pooling the upsampled field gives the
field back) and its blocks are aligned with that pooling's windows: coarse site ``t`` is made of fine
sites ``f·t … f·t + f − 1`` both ways. A translation by ``a`` of its input becomes a translation by
``f·a`` of its output, ``U(T_a y) = T_{f·a} U(y)``, exactly (it copies, no arithmetic). A strided
pooling ``P`` with stride ``s`` dividing the lattice satisfies ``P(T_{s·a} x) = T_a P(x)``, so an
encoder of total stride ``s`` followed by upsampling by ``f = s`` gives back the input lattice and is
equivariant under shifts by multiples of ``s``: ``U P(T_{s·a} x) = U T_a P(x) = T_{s·a} U P(x)``.
In general, a shift by ``a`` passes a layer exactly when ``a`` divided by the layer's scale (the
product of the strides so far over the product of the upsampling factors so far) is an integer;
the shifts that pass every layer are the multiples of the least common multiple of the scales'
numerators. Parameter-free nearest upsampling followed by a periodic convolution is the learned
upsampling of this package ("resize-convolution"); transposed convolutions are not offered (they
give the same stride-multiple symmetry with position-dependent weights per block and checkerboard
artefacts, and need periodic wrapping of overlapping kernels).

>>> import torch
>>> conv = PeriodicConv2d(4, 3, kernel_size=(2, 2))
>>> x = torch.randn(1, 4, 6, 5)
>>> conv(x).shape
torch.Size([1, 3, 6, 5])
>>> shifted = conv(torch.roll(x, shifts=(2, 1), dims=(-2, -1)))
>>> torch.allclose(shifted, torch.roll(conv(x), shifts=(2, 1), dims=(-2, -1)), atol=1e-6)
True
>>> periodic_padding(2, 1), periodic_padding(3, 1), periodic_padding(2, 2), periodic_padding(3, 2)
((0, 1), (1, 1), (0, 0), (0, 1))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "GLOBAL_POOL_MODES",
    "POOL_MODES",
    "UPSAMPLE_MODES",
    "GlobalPool",
    "GlobalPool2d",
    "LatticePool",
    "LatticePool2d",
    "NearestUpsample",
    "NearestUpsample2d",
    "PeriodicConv2d",
    "PeriodicConv3d",
    "PeriodicConv4d",
    "make_activation",
    "periodic_conv",
    "periodic_padding",
    "pooled_extent",
]


def periodic_padding(kernel: int, stride: int = 1) -> tuple[int, int]:
    """``(left, right)`` circular padding for a window of extent ``kernel`` and step ``stride``.

    Total padding ``p = max(kernel − stride, 0)``, ``left = p // 2``, ``right = p − left``.
    """
    if kernel < 1 or stride < 1:
        raise ValueError(f"kernel and stride must be >= 1, got kernel={kernel}, stride={stride}")
    total = max(kernel - stride, 0)
    left = total // 2
    return left, total - left


def pooled_extent(extent: int, kernel: int, stride: int) -> int:
    """Number of output sites of a periodic window layer on an axis of ``extent`` sites.

    ``extent`` for stride 1 (size-keeping), ``⌊extent / stride⌋`` for ``kernel >= stride``, and
    ``⌊(extent − kernel) / stride⌋ + 1`` for ``kernel < stride`` (windows that skip sites).

    >>> pooled_extent(60, 2, 2), pooled_extent(5, 2, 2), pooled_extent(8, 3, 1)
    (30, 2, 8)
    """
    left, right = periodic_padding(kernel, stride)
    return (extent + left + right - kernel) // stride + 1


def _circular_pad(x: torch.Tensor, pad_t: tuple[int, int], pad_x: tuple[int, int]) -> torch.Tensor:
    """Pad the last two axes periodically (``(left, right)`` per axis); no-op when all zero."""
    if pad_t == (0, 0) and pad_x == (0, 0):
        return x
    # F.pad takes the last axis first: (x_left, x_right, t_left, t_right).
    return F.pad(x, (pad_x[0], pad_x[1], pad_t[0], pad_t[1]), mode="circular")


def _circular_pad_nd(x: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Pad the last ``len(pads)`` axes periodically, ``pads[a] = (left, right)`` for axis ``a``
    (time first); any number of axes (``F.pad``'s circular mode stops at three). Each pad must not
    exceed the extent it wraps (a kernel larger than the lattice is refused before this)."""
    first = x.ndim - len(pads)
    for axis, (left, right) in enumerate(pads):
        dim = first + axis
        parts = []
        if left:
            parts.append(x.narrow(dim, x.shape[dim] - left, left))
        parts.append(x)
        if right:
            parts.append(x.narrow(dim, 0, right))
        if len(parts) > 1:
            x = torch.cat(parts, dim=dim)
    return x


class PeriodicConv2d(nn.Conv2d):
    """Stride-1 convolution with circular padding that keeps the lattice size for any kernel.

    Parameters are those of :class:`torch.nn.Conv2d` (``weight`` of shape
    ``(out, in, k_t, k_x)`` and an optional ``bias``), so parameter counts and state dicts are the
    standard ones. The padding follows :func:`periodic_padding` with stride 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=bias)
        self.pad_t = periodic_padding(kernel_size[0], 1)
        self.pad_x = periodic_padding(kernel_size[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_circular_pad(x, self.pad_t, self.pad_x))

    def extra_repr(self) -> str:
        return super().extra_repr() + ", periodic"


class PeriodicConv3d(nn.Conv3d):
    """Stride-1 convolution on ``(B, C, N_0, N_1, N_2)`` with circular padding that keeps the
    lattice size for any kernel (the 3D :class:`PeriodicConv2d`: same padding rule per axis,
    standard ``Conv3d`` parameters ``weight (out, in, k_0, k_1, k_2)`` and ``bias``).

    >>> conv = PeriodicConv3d(6, 2, kernel_size=(2, 3, 1))
    >>> x = torch.randn(1, 6, 4, 5, 3)
    >>> conv(x).shape
    torch.Size([1, 2, 4, 5, 3])
    >>> shifted = conv(torch.roll(x, (1, 2, 1), (-3, -2, -1)))
    >>> torch.allclose(shifted, torch.roll(conv(x), (1, 2, 1), (-3, -2, -1)), atol=1e-6)
    True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=bias)
        self.pads = tuple(periodic_padding(k, 1) for k in kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_circular_pad_nd(x, self.pads))

    def extra_repr(self) -> str:
        return super().extra_repr() + ", periodic"


class PeriodicConv4d(nn.Module):
    """Stride-1 periodic convolution on ``(B, C, N_0, N_1, N_2, N_3)`` (torch has no ``Conv4d``).

    ``weight`` ``(out, in, k_0, k_1, k_2, k_3)`` and ``bias`` ``(out,)`` (initialised as torch
    initialises ``ConvNd``: Kaiming-uniform with ``a = √5``, bias uniform in ``±1/√fan_in``). With
    circular padding ``l`` per axis (:func:`periodic_padding`),

        out[o, t, …] = b[o] + Σ_{c, i, j} w[o, c, i, j] · in[c, (t + i − l_0) mod N_0, …]

    computed as the sum over ``i`` of 3D convolutions of the time slices ``t + i − l_0`` with
    ``w[:, :, i]``: one ``conv3d`` of the ``k_0`` shifted slices stacked along the channels.

    >>> conv = PeriodicConv4d(8, 3, kernel_size=(2, 2, 2, 2))
    >>> x = torch.randn(2, 8, 3, 4, 2, 5)
    >>> conv(x).shape, sum(p.numel() for p in conv.parameters())
    (torch.Size([2, 3, 3, 4, 2, 5]), 387)
    >>> shifted = conv(torch.roll(x, (2, 1, 1, 3), (-4, -3, -2, -1)))
    >>> torch.allclose(shifted, torch.roll(conv(x), (2, 1, 1, 3), (-4, -3, -2, -1)), atol=1e-5)
    True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int, int],
        bias: bool = True,
    ) -> None:
        super().__init__()
        if len(kernel_size) != 4 or min(kernel_size) < 1:
            raise ValueError(f"kernel_size must be 4 positive ints, got {tuple(kernel_size)}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.pads = tuple(periodic_padding(k, 1) for k in self.kernel_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of torch's ``_ConvNd`` (same distributions, same fan-in)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, nt = x.shape[0], x.shape[1], x.shape[2]
        kt = self.kernel_size[0]
        padded = _circular_pad_nd(x, self.pads)  # (B, C, Nt + kt - 1, X', Y', Z')
        # slices t + i - l_0 for i = 0 .. kt-1, stacked along the channels: (B, kt·C, Nt, X', …)
        stacked = torch.cat([padded[:, :, i : i + nt] for i in range(kt)], dim=1)
        stacked = stacked.transpose(1, 2).reshape(b * nt, kt * c, *stacked.shape[3:])
        weight = self.weight.transpose(1, 2).reshape(
            self.out_channels, kt * c, *self.kernel_size[1:]
        )
        out = F.conv3d(stacked, weight, self.bias)  # (B·Nt, out, X, Y, Z)
        return out.reshape(b, nt, self.out_channels, *out.shape[2:]).transpose(1, 2)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"bias={self.bias is not None}, periodic"
        )


def periodic_conv(
    in_channels: int, out_channels: int, kernel_size: Sequence[int], bias: bool = True
) -> nn.Module:
    """The periodic stride-1 convolution for a lattice of ``len(kernel_size)`` dimensions."""
    kernel = tuple(int(k) for k in kernel_size)
    classes = {2: PeriodicConv2d, 3: PeriodicConv3d, 4: PeriodicConv4d}
    if len(kernel) not in classes:
        raise ValueError(f"kernel_size must have 2, 3 or 4 entries, got {kernel}")
    return classes[len(kernel)](in_channels, out_channels, kernel, bias=bias)


POOL_MODES: tuple[str, ...] = ("avg", "max")


class LatticePool(nn.Module):
    """Local average or max pooling with periodic windows on a lattice of ``len(kernel_size)``
    dimensions (see the module docstring).

    Stride 1 on an axis keeps its extent (equivariant); stride ``s > 1`` maps ``n`` sites to
    ``⌊n / s⌋`` (for ``kernel >= s``).

    >>> x = torch.randn(1, 2, 4, 6, 2, 4)
    >>> LatticePool("max", (2, 2, 1, 2), (2, 2, 1, 2))(x).shape
    torch.Size([1, 2, 2, 3, 2, 2])
    """

    def __init__(self, mode: str, kernel_size: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f"pooling mode must be one of {POOL_MODES}, got {mode!r}")
        if len(kernel_size) != len(stride) or len(kernel_size) not in (2, 3, 4):
            raise ValueError(
                f"kernel_size and stride must both have 2, 3 or 4 entries, got "
                f"{tuple(kernel_size)} and {tuple(stride)}"
            )
        self.mode = mode
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.pads = tuple(periodic_padding(k, s) for k, s in zip(kernel_size, stride, strict=True))
        # the 2D attributes of the original LatticePool2d
        self.pad_t, self.pad_x = self.pads[0], self.pads[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = len(self.kernel_size)
        if dims == 2:
            x = _circular_pad(x, self.pads[0], self.pads[1])
            if self.mode == "avg":
                return F.avg_pool2d(x, self.kernel_size, self.stride)
            return F.max_pool2d(x, self.kernel_size, self.stride)
        x = _circular_pad_nd(x, self.pads)
        pool = F.avg_pool3d if self.mode == "avg" else F.max_pool3d
        if dims == 3:
            return pool(x, self.kernel_size, self.stride)
        # 4D: pool the three space axes per time slice, then the time axis
        b, c, nt = x.shape[:3]
        y = pool(x.reshape(b, c * nt, *x.shape[3:]), self.kernel_size[1:], self.stride[1:])
        y = y.reshape(b, c, nt, -1)
        pool1 = F.avg_pool2d if self.mode == "avg" else F.max_pool2d
        y = pool1(y, (self.kernel_size[0], 1), (self.stride[0], 1))
        return y.reshape(b, c, y.shape[2], *self._space_out(x.shape[3:]))

    def _space_out(self, extents: Sequence[int]) -> tuple[int, ...]:
        return tuple(
            (n - k) // s + 1
            for n, k, s in zip(extents, self.kernel_size[1:], self.stride[1:], strict=True)
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode}, kernel_size={self.kernel_size}, stride={self.stride}, periodic"


#: The 2D name of :class:`LatticePool`.
LatticePool2d = LatticePool

GLOBAL_POOL_MODES: tuple[str, ...] = ("avg", "max", "sum")


class GlobalPool(nn.Module):
    """Reduce ``(B, C, *shape)`` to ``(B, C)`` by mean, max or sum over all lattice sites.

    >>> x = torch.ones(2, 3, 4, 5)
    >>> GlobalPool2d("sum")(x)[0].tolist(), GlobalPool2d("avg")(x).shape
    ([20.0, 20.0, 20.0], torch.Size([2, 3]))
    >>> GlobalPool("sum")(torch.ones(2, 3, 4, 5, 2))[0].tolist()
    [40.0, 40.0, 40.0]
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in GLOBAL_POOL_MODES:
            raise ValueError(
                f"global pooling mode must be one of {GLOBAL_POOL_MODES}, got {mode!r}"
            )
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sites = tuple(range(-(x.ndim - 2), 0))  # (-2, -1) in 2D
        if self.mode == "avg":
            return x.mean(dim=sites)
        if self.mode == "sum":
            return x.sum(dim=sites)
        return x.amax(dim=sites)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


#: The 2D name of :class:`GlobalPool`.
GlobalPool2d = GlobalPool

UPSAMPLE_MODES: tuple[str, ...] = ("nearest",)


class NearestUpsample(nn.Module):
    """Copy every site of ``(B, C, h, w)`` to an ``f_t × f_x`` block: ``(B, C, f_t·h, f_x·w)``;
    in d dimensions one factor per axis.

    >>> y = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> NearestUpsample2d((2, 1))(y)[0, 0].tolist()
    [[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [2.0, 3.0]]
    >>> NearestUpsample((1, 2, 3))(torch.zeros(1, 1, 2, 2, 2)).shape
    torch.Size([1, 1, 2, 4, 6])
    """

    def __init__(self, factor: Sequence[int]) -> None:
        super().__init__()
        if min(factor) < 1:
            raise ValueError(f"upsampling factors must be >= 1, got {tuple(factor)}")
        self.factor = tuple(int(f) for f in factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.ndim - len(self.factor)
        for axis, f in enumerate(self.factor):
            if f > 1:
                x = x.repeat_interleave(f, dim=first + axis)
        return x

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode=nearest"


#: The 2D name of :class:`NearestUpsample`.
NearestUpsample2d = NearestUpsample


# name -> (constructor, allowed keyword arguments). Pointwise, hence equivariant.
ACTIVATIONS: dict[str, tuple[Callable[..., nn.Module], frozenset[str]]] = {
    "relu": (nn.ReLU, frozenset()),
    "leaky_relu": (nn.LeakyReLU, frozenset({"negative_slope"})),
    "elu": (nn.ELU, frozenset({"alpha"})),
    "gelu": (nn.GELU, frozenset({"approximate"})),
    "silu": (nn.SiLU, frozenset()),
    "tanh": (nn.Tanh, frozenset()),
    "sigmoid": (nn.Sigmoid, frozenset()),
    "softplus": (nn.Softplus, frozenset({"beta", "threshold"})),
    "identity": (nn.Identity, frozenset()),
}


def make_activation(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the activation ``name`` (a key of :data:`ACTIVATIONS`) with its keyword options.

    >>> make_activation("leaky_relu", negative_slope=0.2)
    LeakyReLU(negative_slope=0.2)
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    constructor, allowed = ACTIVATIONS[name]
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        options = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"activation {name!r} takes no option {unknown}; its options: {options}")
    return constructor(**kwargs)
