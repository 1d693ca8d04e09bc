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

A *site-output* network (``output: site``, see :mod:`scalar_ml.models.spec`) returns a field
``(B, C, Nt, Nx)`` on the input lattice instead of one vector per configuration. It has no
``global_pool``; ``upsample`` and ``unflatten`` layers exist only for it:

- **eq, site**: fully convolutional: periodic stride-1 convolutions, stride-1 pooling and
  activations only (no reduction, no dense layer: a 1×1 convolution is the dense layer applied at
  every site). Exactly translation *equivariant*, ``f(T x) = T f(x)``, for every shift on any
  lattice size.
- **st, site**: convolutions, strided pooling and ``upsample`` layers, in any order, provided that
  per axis the upsampling factors multiply to the product of the pooling strides (checked here), so
  the output lattice is the input lattice whenever the strides divide it (on other lattices the
  builder's trace refuses the first pooling that does not divide, naming it). Equivariant under
  shifts by multiples of the period of :func:`~scalar_ml.models.builder.trace_lattice` (the
  product of the strides for an encoder followed by upsampling).
- **fl, site**: an fl network (lattice layers, one ``flatten``, dense layers and activations) whose
  dense stage is followed by one ``unflatten`` back to ``(B, C, Nt, Nx)`` on its fixed
  ``input_size``; after the unflatten only size-keeping lattice layers (stride-1 convolutions and
  pooling) and activations. No translation symmetry.

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
>>> check_family("st", layers, output="site")
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 2 (global_pool): global pooling is not allowed in a site-output network (output: site keeps the lattice; global pooling reduces it to one vector per configuration)
>>> site = [parse_layer(i, d) for i, d in enumerate([
...     {"type": "conv", "kernel": 2, "out": 4},
...     {"type": "avg_pool", "kernel": 2, "stride": 2},
...     {"type": "conv", "kernel": 1, "out": 1},
...     {"type": "upsample", "factor": [2, 1]}])]
>>> check_family("st", site, output="site")
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: layer 3 (upsample): the upsampling factors multiply to [2, 1] per axis (time, space) but the pooling strides to [2, 2]; a site-output network must end on its input lattice
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scalar_ml.models.group import GroupConvSpec, GroupPool, check_eqr
from scalar_ml.models.spec import (
    FAMILIES,
    OUTPUTS,
    Conv,
    Flatten,
    GlobalPool,
    LayerSpec,
    Linear,
    LocalPool,
    SpecError,
    Unflatten,
    Upsample,
    parse_output,
)

__all__ = ["FAMILY_DESCRIPTIONS", "check_family"]

FAMILY_DESCRIPTIONS: dict[str, str] = {
    "eq": "stride-1 periodic convolutions, global pooling, dense layers: translation invariant, any size",
    "st": "convolutions and strided local pooling, global pooling, dense layers: invariant under stride multiples",
    "fl": "convolutions and pooling, flatten, dense layers: fixed input size",
    "eqr": "lifting and group convolutions, group and global pooling, dense layers: invariant under translations and a point group, any size",
}


def check_family(
    family: str, layers: Sequence[LayerSpec], output: str = OUTPUTS[0], *, dims: int = 2
) -> int | None:
    """Validate ``layers`` against ``family``'s rules for ``output`` (one of :data:`OUTPUTS`) on a
    ``dims``-dimensional lattice (the rules are the same in every dimension, per axis).

    Returns the index of the reduction layer (``global_pool`` or ``flatten``); ``None`` for eq and
    st site-output networks, which never reduce the lattice.
    """
    if family not in FAMILIES:
        raise SpecError(
            f"model spec: unknown family {family!r}; expected one of {', '.join(FAMILIES)}"
        )
    output = parse_output(output)
    if family == "eqr":  # its own rules (scalar_ml.models.group)
        if output == "site":
            raise SpecError("model spec: family 'eqr' has no site-output networks (yet)")
        return check_eqr(layers)
    if not layers:
        raise SpecError(
            f"model spec: family {family!r} needs at least one layer, got an empty list"
        )
    if output == "site":
        if family not in _SITE_RULES:
            raise SpecError(f"model spec: family {family!r} has no site-output networks")
        if family == "st":
            _check_st_site(layers, dims)
            return None
        return _SITE_RULES[family](layers)
    for layer in layers:
        if isinstance(layer, Upsample | Unflatten):
            raise SpecError(
                f"{layer.where}: {layer.type} is only allowed in a site-output network "
                "(output: site); a configuration output reduces the lattice once and never restores it"
            )
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
            "layers; found none (a network whose output is a lattice field is output: site)"
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


def _refuse_global_pool(layer: LayerSpec) -> None:
    if isinstance(layer, GlobalPool):
        raise SpecError(
            f"{layer.where}: global pooling is not allowed in a site-output network (output: site "
            "keeps the lattice; global pooling reduces it to one vector per configuration)"
        )


def _check_lattice_site(family: str, layers: Sequence[LayerSpec]) -> None:
    """eq and st site networks: lattice layers only; st may pool with strides and upsample."""
    for layer in layers:
        _refuse_global_pool(layer)
        if isinstance(layer, Flatten):
            raise SpecError(
                f"{layer.where}: flatten is not allowed in family {family!r} (flattening fixes the "
                "lattice size and breaks translation equivariance; use family 'fl')"
            )
        if isinstance(layer, Unflatten):
            raise SpecError(
                f"{layer.where}: unflatten is not allowed in family {family!r} (it restores the "
                "lattice after the flatten of an fl network; an eq/st network never leaves it)"
            )
        if isinstance(layer, Linear):
            raise SpecError(
                f"{layer.where}: a dense layer is not allowed in a site-output {family} network "
                "(there are no reduced features; a 1×1 conv is the dense layer applied at every site)"
            )
        if family == "eq" and isinstance(layer, LocalPool) and layer.strided:
            raise SpecError(
                f"{layer.where}: stride {list(layer.stride)} > 1 is not allowed in family 'eq' "
                "(strided pooling breaks translation equivariance; use stride 1 or family 'st')"
            )
        if family == "eq" and isinstance(layer, Upsample):
            raise SpecError(
                f"{layer.where}: upsampling is not allowed in family 'eq' (an eq network stays on "
                "its input lattice; strided pooling with upsampling is family 'st')"
            )


def _check_eq_site(layers: Sequence[LayerSpec]) -> None:
    _check_lattice_site("eq", layers)


def _check_st_site(layers: Sequence[LayerSpec], dims: int = 2) -> None:
    _check_lattice_site("st", layers)
    axes = range(dims)
    strides = [1] * dims
    factors = [1] * dims
    last = None  # the last layer that changes the lattice size
    for layer in layers:
        if isinstance(layer, LocalPool) and layer.strided:
            strides = [strides[a] * layer.stride[a] for a in axes]
            last = layer
        elif isinstance(layer, Upsample):
            factors = [factors[a] * layer.factor[a] for a in axes]
            last = layer
    if strides == factors:
        return
    assert last is not None  # without strides or upsampling both products are [1, ...]
    order = "(time, space)" if dims == 2 else "(time first)"
    if not any(isinstance(layer, Upsample) for layer in layers):
        raise SpecError(
            f"{last.where}: strided pooling shrinks the lattice by {strides} per axis {order} "
            "and no upsample restores it; a site-output network must end on its input "
            "lattice (add {type: upsample, factor: ...})"
        )
    raise SpecError(
        f"{last.where}: the upsampling factors multiply to {factors} per axis {order} but "
        f"the pooling strides to {strides}; a site-output network must end on its input lattice"
    )


def _check_fl_site(layers: Sequence[LayerSpec]) -> int:
    for layer in layers:
        _refuse_global_pool(layer)
        if isinstance(layer, Upsample):
            raise SpecError(
                f"{layer.where}: upsampling is not allowed in family 'fl' (an fl site-output "
                "network restores its fixed lattice with unflatten after the dense layers)"
            )
    flattens = [layer for layer in layers if isinstance(layer, Flatten)]
    unflattens = [layer for layer in layers if isinstance(layer, Unflatten)]
    if not flattens:
        raise SpecError(
            "model spec: family 'fl' needs one flatten layer after the lattice layers; found none"
        )
    if len(flattens) > 1:
        raise SpecError(
            f"{flattens[1].where}: a second flatten (the first is layer {flattens[0].index}); "
            "family 'fl' reduces the lattice exactly once"
        )
    if not unflattens:
        raise SpecError(
            "model spec: family 'fl' with output: site needs one unflatten layer after the dense "
            "layers (it restores the (B, C, Nt, Nx) lattice); found none"
        )
    if len(unflattens) > 1:
        raise SpecError(
            f"{unflattens[1].where}: a second unflatten (the first is layer "
            f"{unflattens[0].index}); an fl site-output network restores the lattice once"
        )
    flatten, unflatten = flattens[0].index, unflattens[0].index
    if unflatten < flatten:
        raise SpecError(
            f"{unflattens[0].where}: unflatten before the flatten at layer {flatten}; it restores "
            "the lattice after the dense layers"
        )
    for layer in layers:
        if layer.index < flatten and isinstance(layer, Linear):
            raise SpecError(
                f"{layer.where}: dense layer before the flatten at layer {flatten}; "
                "linear layers act on the reduced features (use a 1×1 conv on the lattice)"
            )
        if flatten < layer.index < unflatten and isinstance(layer, Conv | LocalPool):
            raise SpecError(
                f"{layer.where}: lattice layer between the flatten at layer {flatten} and the "
                f"unflatten at layer {unflatten}; only linear layers and activations may be there"
            )
        if layer.index > unflatten and isinstance(layer, Linear):
            raise SpecError(
                f"{layer.where}: dense layer after the unflatten at layer {unflatten}; a 1×1 "
                "conv is the dense layer applied at every site"
            )
        if layer.index > unflatten and isinstance(layer, LocalPool) and layer.strided:
            raise SpecError(
                f"{layer.where}: strided pooling after the unflatten at layer {unflatten}; the "
                "output must keep the input lattice (use stride 1)"
            )
    if not any(isinstance(layer, Linear) and flatten < layer.index < unflatten for layer in layers):
        raise SpecError(
            f"model spec: family 'fl' needs at least one linear layer between the flatten at "
            f"layer {flatten} and the unflatten at layer {unflatten}"
        )
    return flatten


#: family -> the rules of its site-output networks (returns the reduction index, or None).
_SITE_RULES: dict[str, Callable[[Sequence[LayerSpec]], int | None]] = {
    "eq": _check_eq_site,
    "st": _check_st_site,
    "fl": _check_fl_site,
}
