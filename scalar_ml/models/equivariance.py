"""Translation symmetry, and the point symmetries of family eqr, as checked contracts.

A lattice translation by ``(dt, dx)`` is ``T x = torch.roll(x, (dt, dx), dims=(-2, -1))``; on a
d-dimensional lattice a shift has one entry per axis, ``(s_0, …, s_{d-1})``, time first, and rolls
the last d axes. For a
network ``f`` and inputs ``x`` the *translation error* of one shift is

    err(dt, dx) = max |f(T x) − f(x)| / max |f(x)|

(maxima over the whole output batch; the denominator is floored at the dtype's smallest normal
number, so an all-zero output is compared absolutely). When the output is itself a lattice field,
``(B, C, Nt, Nx)`` with the input's lattice shape (a site-output network, ``output: site``), the
check is for *equivariance* and ``f(x)`` is replaced by ``T f(x)``:

    err(dt, dx) = max |f(T x) − T f(x)| / max |f(x)|.

A four-dimensional output on another lattice (e.g. a bare strided pooling) has neither property
defined and is refused with a ``ValueError``. :func:`translation_error` returns the largest error
over the shifts.

Default shifts (:func:`lattice_shifts`): every shift when the lattice has at most
:data:`FULL_SHIFT_MAX_SITES` sites (8×8, 60×4, 100×5, 32×32, 8×8×8, 4⁴); on larger lattices the
subset of all pure shifts along each axis (``(dt, 0)``, ``(0, dx)``, …) and the diagonal
``(d, d, …)``.

What holds by construction (:meth:`~scalar_ml.models.builder.LatticeNet.symmetry_shifts`): eq
networks are invariant (site outputs: equivariant) under every shift on any lattice size (errors at
rounding level: about 1e-7 in float32, 1e-16 in float64); st networks only under multiples of their
period (the stride product; for a site output, an encoder followed by upsampling) on lattices the
strides divide; fl networks promise nothing, whatever their output.

The unshifted input is evaluated in the same batch as its shifted copies. On CUDA, float32
convolutions may run in TF32 (``torch.backends.cudnn.allow_tf32``) or with position-dependent
algorithms (Winograd, FFT), whose rounding can exceed the float32 bound of 1e-5 quoted for the eq
presets; the bound is stated for full float32 arithmetic (CPU, or TF32 disabled).

>>> import torch
>>> from scalar_ml.models import build_preset
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
>>> translation_error(build_preset("counting/eq_2", dtype=torch.float64), x) < 1e-12
True
>>> st = build_preset("detection/st", dtype=torch.float64)
>>> translation_error(st, x, shifts=st.invariant_shifts(8, 8)) < 1e-12
True
>>> translation_error(st, x, shifts=[(1, 0)]) > 1e-6
True
>>> from scalar_ml.models import build_model
>>> site = build_model({"family": "eq", "output": "site", "layers": [
...     {"type": "conv", "kernel": 3, "out": 4}, {"type": "activation", "name": "tanh"},
...     {"type": "conv", "kernel": 2, "out": 1}]}, dtype=torch.float64)
>>> translation_error(site, x[:, :, :5, :7]) < 1e-12  # f(T x) = T f(x) on a 5×7 lattice
True
>>> from scalar_ml.models.layers import LatticePool2d
>>> translation_error(LatticePool2d("avg", (2, 2), (2, 2)), x)
Traceback (most recent call last):
...
ValueError: the output (2, 4, 4, 4) is a field on a 4×4 lattice but the input lattice is 8×8: neither invariance nor equivariance is defined

**Point symmetries** (:func:`symmetry_error`): for an element ``g`` of
:mod:`scalar_ml.physics.symmetry` (reflections ``T``, ``P``, the swap ``S``, charge conjugation
``C`` and their products) the error is ``max |f(g·x) − f(x)| / max |f(x)|``, or, for lattice-field
outputs, ``f(x)`` moved as a scalar site field (``g.apply_sites``). Family eqr networks are
invariant under their ``group`` by construction (errors at rounding level); the translation-only
families are not, in general:

>>> eqr = build_preset("counting/eqr_1", dtype=torch.float64)
>>> symmetry_error(eqr, x) < 1e-12                      # every element of its group <P, TC>
True
>>> symmetry_error(build_preset("counting/eq_1", dtype=torch.float64), x, ["P"]) > 1e-3
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from scalar_ml.physics.symmetry import FIXED_MU_GROUP, LatticeSymmetry, element

__all__ = [
    "FULL_SHIFT_MAX_SITES",
    "lattice_shifts",
    "symmetry_error",
    "symmetry_errors",
    "translation_error",
    "translation_errors",
]

#: Lattices with at most this many sites are checked under every shift by default.
FULL_SHIFT_MAX_SITES = 1024
#: Shifted copies are evaluated in chunks of at most this many lattice sites (bounds memory).
_CHUNK_SITES = 1 << 16


def lattice_shifts(
    *shape: int,
    period: Sequence[int] | None = None,
    max_sites: int = FULL_SHIFT_MAX_SITES,
) -> list[tuple[int, ...]]:
    """Shifts of the lattice ``shape`` (``nt, nx`` in 2D) whose entry on axis ``a`` is a multiple
    of ``period[a]`` (default 1 on every axis).

    All of them when the lattice has at most ``max_sites`` sites; otherwise the pure shifts along
    each axis and the diagonal ``(k·period[0], k·period[1], …)``.

    >>> lattice_shifts(4, 2)
    [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    >>> lattice_shifts(4, 4, period=(2, 2))
    [(0, 0), (0, 2), (2, 0), (2, 2)]
    >>> len(lattice_shifts(64, 64))  # 64 + 64 + 64 minus the three repeats of (0, 0)
    190
    >>> len(lattice_shifts(4, 3, 2)), len(lattice_shifts(16, 16, 16))  # 24; 4·16 − 3
    (24, 61)
    """
    extents = tuple(int(n) for n in shape)
    steps = tuple(int(p) for p in (period if period is not None else (1,) * len(extents)))
    if len(steps) != len(extents):
        raise ValueError(f"period {steps} and lattice {extents} have different lengths")
    if min(steps, default=1) < 1:
        raise ValueError(f"period must be positive, got {steps}")
    if math.prod(extents) <= max_sites:
        return list(
            itertools.product(*(range(0, n, p) for n, p in zip(extents, steps, strict=True)))
        )
    shifts: set[tuple[int, ...]] = set()
    for axis, (n, p) in enumerate(zip(extents, steps, strict=True)):
        shifts |= {
            tuple(s if a == axis else 0 for a in range(len(extents))) for s in range(0, n, p)
        }
    longest = max(n // p for n, p in zip(extents, steps, strict=True))
    shifts |= {
        tuple((k * p) % n for n, p in zip(extents, steps, strict=True)) for k in range(longest)
    }
    return sorted(shifts)


@torch.no_grad()
def translation_errors(
    model: nn.Module,
    x: torch.Tensor,
    shifts: Iterable[tuple[int, ...]] | None = None,
) -> dict[tuple[int, ...], float]:
    """Relative translation error of ``model`` on ``x`` for every shift (see the module docstring).

    ``x`` is a batch ``(B, C, Nt, Nx)`` (``(B, C, *shape)`` on a d-dimensional lattice, d = 2, 3,
    4); the model is evaluated in eval mode and restored.
    """
    if x.ndim not in (4, 5, 6):
        raise ValueError(
            f"x must be a batch (B, C, Nt, Nx) or (B, C, *shape) of a 3D or 4D lattice, got "
            f"shape {tuple(x.shape)}"
        )
    shape = tuple(int(n) for n in x.shape[2:])
    axes = tuple(range(-len(shape), 0))
    shift_list = [
        tuple(int(s) for s in shift)
        for shift in (lattice_shifts(*shape) if shifts is None else shifts)
    ]
    if not shift_list:
        raise ValueError("no shifts to check")
    bad = [s for s in shift_list if len(s) != len(shape)]
    if bad:
        raise ValueError(f"shift {bad[0]} does not have one entry per axis of the {shape} lattice")
    sites = math.prod(shape)
    was_training = model.training
    model.eval()
    try:
        per_chunk = max(1, _CHUNK_SITES // max(1, x.shape[0] * sites) - 1)
        errors: dict[tuple[int, ...], float] = {}
        for start in range(0, len(shift_list), per_chunk):
            chunk = shift_list[start : start + per_chunk]
            # The unshifted input rides in the same batch, so reference and shifted outputs come
            # from the same kernels (batch-size dependent algorithm choices cancel).
            batch = torch.cat([x, *(torch.roll(x, s, dims=axes) for s in chunk)])
            outputs = model(batch)
            if not outputs.is_floating_point():
                outputs = outputs.double()
            outputs = outputs.reshape(len(chunk) + 1, x.shape[0], *outputs.shape[1:])
            reference = outputs[0]
            equivariant = reference.ndim == x.ndim
            if equivariant and tuple(reference.shape[2:]) != shape:
                out_size = "×".join(str(n) for n in reference.shape[2:])
                raise ValueError(
                    f"the output {tuple(reference.shape)} is a field on a {out_size} lattice but "
                    f"the input lattice is {'×'.join(map(str, shape))}: neither invariance nor "
                    "equivariance is defined"
                )
            scale = reference.abs().max().clamp_min(torch.finfo(reference.dtype).tiny)
            for shift, output in zip(chunk, outputs[1:], strict=True):
                expected = torch.roll(reference, shift, dims=axes) if equivariant else reference
                errors[shift] = float((output - expected).abs().max() / scale)
        return errors
    finally:
        model.train(was_training)


def translation_error(
    model: nn.Module,
    x: torch.Tensor,
    shifts: Iterable[tuple[int, ...]] | None = None,
) -> float:
    """Largest relative change of ``model(x)`` over the lattice translations ``shifts``.

    ``shifts=None`` uses :func:`lattice_shifts` of the input's lattice (every shift up to
    :data:`FULL_SHIFT_MAX_SITES` sites). For an st network pass ``model.symmetry_shifts(nt, nx)``
    to check the symmetry it does have (invariance, or equivariance for a site output).
    """
    return max(translation_errors(model, x, shifts).values())


@torch.no_grad()
def symmetry_errors(
    model: nn.Module,
    x: torch.Tensor,
    elements: Iterable[LatticeSymmetry | str] | None = None,
) -> dict[str, float]:
    """Relative error of ``model`` on ``x`` under each point-symmetry element (module docstring).

    Args:
        model: a network on ``(B, 4, Nt, Nx)`` configurations.
        x: a batch of configurations (float, the model's dtype; or integer).
        elements: :class:`~scalar_ml.physics.symmetry.LatticeSymmetry` elements or their names;
            ``None``: the elements of ``model.group`` (family eqr), else of
            :data:`~scalar_ml.physics.symmetry.FIXED_MU_GROUP` (``{1, P, TC, TPC}``, the exact
            symmetries of the data at any ``mu``).

    Returns ``{element name: error}``. Elements with ``S`` map an ``Nt × Nx`` input to
    ``Nx × Nt`` (evaluated separately when ``Nt != Nx``). The model runs in eval mode and is restored.
    """
    if x.ndim != 4 or x.shape[1] != 4:
        raise ValueError(
            f"x must be a batch (B, 4, Nt, Nx) of configurations, got {tuple(x.shape)}"
        )
    if elements is None:
        group = getattr(model, "group", None)
        elements = (FIXED_MU_GROUP if group is None else group).elements
    chosen = [element(g) if isinstance(g, str) else g for g in elements]
    if not chosen:
        raise ValueError("no symmetry elements to check")
    nt, nx = int(x.shape[-2]), int(x.shape[-1])
    was_training = model.training
    model.eval()
    try:
        same_shape = [g for g in chosen if not g.swap or nt == nx]
        swapped = [g for g in chosen if g.swap and nt != nx]
        outputs: dict[LatticeSymmetry, torch.Tensor] = {}
        # the reference rides in the same batch as the images of its shape (same kernels)
        batch = torch.cat([x, *(g.apply(x) for g in same_shape)])
        out = model(batch)
        out = out.reshape(len(same_shape) + 1, x.shape[0], *out.shape[1:])
        reference = out[0]
        outputs.update(zip(same_shape, out[1:], strict=True))
        if swapped:
            out = model(torch.cat([g.apply(x) for g in swapped]))
            out = out.reshape(len(swapped), x.shape[0], *out.shape[1:])
            outputs.update(zip(swapped, out, strict=True))
        if not reference.is_floating_point():
            reference = reference.double()
        field = reference.ndim == 4 and tuple(reference.shape[-2:]) == (nt, nx)
        scale = reference.abs().max().clamp_min(torch.finfo(reference.dtype).tiny)
        errors = {}
        for g in chosen:
            expected = g.apply_sites(reference) if field else reference
            errors[g.name] = float((outputs[g].to(reference.dtype) - expected).abs().max() / scale)
        return errors
    finally:
        model.train(was_training)


def symmetry_error(
    model: nn.Module,
    x: torch.Tensor,
    elements: Iterable[LatticeSymmetry | str] | None = None,
) -> float:
    """Largest relative change of ``model(x)`` under the point-symmetry ``elements`` (see
    :func:`symmetry_errors`; default: the model's own group, or ``{1, P, TC, TPC}``)."""
    return max(symmetry_errors(model, x, elements).values())
