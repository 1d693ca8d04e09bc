"""Lattice layers: periodic convolution, periodic local pooling, global pooling, upsampling, activations.

All lattice tensors are ``(B, C, Nt, Nx)``: axis −2 is time, axis −1 is space, both periodic
(SPEC §1). The layers here are the only places where the lattice geometry enters a network.

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

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "GLOBAL_POOL_MODES",
    "POOL_MODES",
    "UPSAMPLE_MODES",
    "GlobalPool2d",
    "LatticePool2d",
    "NearestUpsample2d",
    "PeriodicConv2d",
    "make_activation",
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


POOL_MODES: tuple[str, ...] = ("avg", "max")


class LatticePool2d(nn.Module):
    """Local average or max pooling with periodic windows (see the module docstring).

    Stride 1 on an axis keeps its extent (equivariant); stride ``s > 1`` maps ``n`` sites to
    ``⌊n / s⌋`` (for ``kernel >= s``).
    """

    def __init__(self, mode: str, kernel_size: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f"pooling mode must be one of {POOL_MODES}, got {mode!r}")
        self.mode = mode
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.pad_t = periodic_padding(kernel_size[0], stride[0])
        self.pad_x = periodic_padding(kernel_size[1], stride[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _circular_pad(x, self.pad_t, self.pad_x)
        if self.mode == "avg":
            return F.avg_pool2d(x, self.kernel_size, self.stride)
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, kernel_size={self.kernel_size}, stride={self.stride}, periodic"


GLOBAL_POOL_MODES: tuple[str, ...] = ("avg", "max", "sum")


class GlobalPool2d(nn.Module):
    """Reduce ``(B, C, Nt, Nx)`` to ``(B, C)`` by mean, max or sum over all lattice sites.

    >>> x = torch.ones(2, 3, 4, 5)
    >>> GlobalPool2d("sum")(x)[0].tolist(), GlobalPool2d("avg")(x).shape
    ([20.0, 20.0, 20.0], torch.Size([2, 3]))
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in GLOBAL_POOL_MODES:
            raise ValueError(
                f"global pooling mode must be one of {GLOBAL_POOL_MODES}, got {mode!r}"
            )
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "avg":
            return x.mean(dim=(-2, -1))
        if self.mode == "sum":
            return x.sum(dim=(-2, -1))
        return x.amax(dim=(-2, -1))

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


UPSAMPLE_MODES: tuple[str, ...] = ("nearest",)


class NearestUpsample2d(nn.Module):
    """Copy every site of ``(B, C, h, w)`` to an ``f_t × f_x`` block: ``(B, C, f_t·h, f_x·w)``.

    >>> y = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> NearestUpsample2d((2, 1))(y)[0, 0].tolist()
    [[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [2.0, 3.0]]
    """

    def __init__(self, factor: tuple[int, int]) -> None:
        super().__init__()
        if min(factor) < 1:
            raise ValueError(f"upsampling factors must be >= 1, got {tuple(factor)}")
        self.factor = (int(factor[0]), int(factor[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ft, fx = self.factor
        if ft > 1:
            x = x.repeat_interleave(ft, dim=-2)
        if fx > 1:
            x = x.repeat_interleave(fx, dim=-1)
        return x

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode=nearest"


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
