"""Architecture families EQ / ST / FL (seed §"Architectures", SPEC §6), and EQR, as validated rules.

A network is a *lattice stage* (convolutions, local pooling, activations acting on
``(B, C, Nt, Nx)``), one *reduction* layer, and a *dense stage* (linear layers and activations on
``(B, features)``). The families differ in what the lattice stage may do and how it is reduced:

- **eq** (equivariant): lattice layers are periodic stride-1 convolutions, stride-1 pooling and
  activations, all commuting with lattice translations; the reduction is one ``global_pool``.
  Equivariance followed by global pooling makes the output exactly translation invariant, on any
  lattice size.
- **st** (strided): like eq, but local pooling with stride > 1 is allowed; the reduction is one
  ``global_pool``. The output is invariant only under shifts by multiples of the product of the
  strides (and only when the strides divide the lattice), yet any lattice size is accepted.
- **fl** (flattening): lattice layers as in st; the reduction is one ``flatten`` followed by at
  least one ``linear``. The feature count depends on the lattice size, so the network is built for
  one ``input_size`` and accepts only that.
- **eqr** (equivariant under translations and reflections/charge conjugation): lifting and group
  convolutions, group pooling, one ``global_pool``; its rules live with its layers in
  :mod:`scalar_ml.models.group`.

Violations raise :class:`~scalar_ml.models.spec.SpecError` naming the offending layer (index and
type) and, where it helps, the family that would allow it.

>>> from scalar_ml.models.spec import parse_layer
>>> layers = [parse_layer(i, d) for i, d in enumerate([
...     {"type": "conv", "kernel": 2, "out": 4},
...     {"type": "avg_pool", "kernel": 2, "stride": 2},
...     {"type": "global_pool", "mode": "avg"}])]
>>> check_family("st", layers)
2
>>> check_family("eq", layers)
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 1 (avg_pool): stride [2, 2] > 1 is not allowed in family 'eq' (strided pooling breaks translation equivariance; use stride 1 or family 'st')
"""

from __future__ import annotations

from collections.abc import Sequence

from scalar_ml.models.group import GroupConvSpec, GroupPool, check_eqr
from scalar_ml.models.spec import (
    FAMILIES,
    Conv,
    Flatten,
    GlobalPool,
    LayerSpec,
    Linear,
    LocalPool,
    SpecError,
)

__all__ = ["FAMILY_DESCRIPTIONS", "check_family"]

FAMILY_DESCRIPTIONS: dict[str, str] = {
    "eq": "stride-1 periodic convolutions, global pooling, dense layers: translation invariant, any size",
    "st": "convolutions and strided local pooling, global pooling, dense layers: invariant under stride multiples",
    "fl": "convolutions and pooling, flatten, dense layers: fixed input size",
    "eqr": "lifting and group convolutions, group and global pooling, dense layers: invariant under translations and a point group, any size",
}


def check_family(family: str, layers: Sequence[LayerSpec]) -> int:
    """Validate ``layers`` against ``family``'s rules; return the index of the reduction layer."""
    if family not in FAMILIES:
        raise SpecError(
            f"model spec: unknown family {family!r}; expected one of {', '.join(FAMILIES)}"
        )
    if family == "eqr":  # its own rules (scalar_ml.models.group)
        return check_eqr(layers)
    if not layers:
        raise SpecError(
            f"model spec: family {family!r} needs at least one layer, got an empty list"
        )
    for layer in layers:
        if isinstance(layer, GroupConvSpec | GroupPool):
            raise SpecError(
                f"{layer.where}: group layers are only allowed in family 'eqr' (with a group)"
            )
    reduction_type = Flatten if family == "fl" else GlobalPool
    reduction_name = "flatten" if family == "fl" else "global_pool"
    reductions = [layer for layer in layers if isinstance(layer, reduction_type)]
    for layer in layers:
        if family == "fl" and isinstance(layer, GlobalPool):
            raise SpecError(
                f"{layer.where}: global pooling is not allowed in family 'fl' (an fl network ends in "
                "flatten + dense layers; a globally pooled network is family 'eq' or 'st')"
            )
        if family != "fl" and isinstance(layer, Flatten):
            raise SpecError(
                f"{layer.where}: flatten is not allowed in family {family!r} (flattening fixes the "
                "lattice size and breaks translation invariance; use family 'fl')"
            )
        if family == "eq" and isinstance(layer, LocalPool) and layer.strided:
            raise SpecError(
                f"{layer.where}: stride {list(layer.stride)} > 1 is not allowed in family 'eq' "
                "(strided pooling breaks translation equivariance; use stride 1 or family 'st')"
            )
    if not reductions:
        raise SpecError(
            f"model spec: family {family!r} needs one {reduction_name} layer after the lattice "
            "layers; found none"
        )
    if len(reductions) > 1:
        raise SpecError(
            f"{reductions[1].where}: a second {reduction_name} (the first is layer "
            f"{reductions[0].index}); family {family!r} reduces the lattice exactly once"
        )
    reduction = reductions[0].index
    for layer in layers:
        if layer.index < reduction and isinstance(layer, Linear):
            raise SpecError(
                f"{layer.where}: dense layer before the {reduction_name} at layer {reduction}; "
                "linear layers act on the reduced features (use a 1×1 conv on the lattice)"
            )
        if layer.index > reduction and isinstance(layer, Conv | LocalPool):
            raise SpecError(
                f"{layer.where}: lattice layer after the {reduction_name} at layer {reduction}; "
                "only linear layers and activations may follow it"
            )
    if family == "fl" and not any(
        isinstance(layer, Linear) and layer.index > reduction for layer in layers
    ):
        raise SpecError(
            f"model spec: family 'fl' needs at least one linear layer after the flatten at layer {reduction}"
        )
    return reduction
