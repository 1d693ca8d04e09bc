"""Networks on 3D and 4D lattices: the layers against direct references, the families' symmetries on
any shape, the presets lifted from 2D (scalar_ml.models.presets.lift_spec), and clear errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from scalar_ml.models import (
    SpecError,
    build_model,
    build_preset,
    count_parameters,
    lattice_shifts,
    list_presets,
    preset_spec,
    translation_error,
)
from scalar_ml.models.layers import (
    LatticePool,
    NearestUpsample,
    PeriodicConv3d,
    PeriodicConv4d,
    periodic_conv,
    periodic_padding,
)
from scalar_ml.models.presets import lift_spec


def _direct_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """out[b, o, s] = bias[o] + Σ_{c, off} w[o, c, off] x[b, c, s + off − l] (periodic), by
    rolling the input once per kernel offset."""
    kernel = weight.shape[2:]
    dims = len(kernel)
    lefts = [periodic_padding(k, 1)[0] for k in kernel]
    out = torch.zeros(x.shape[0], weight.shape[0], *x.shape[2:], dtype=x.dtype)
    axes = tuple(range(2, 2 + dims))
    for off in itertools.product(*(range(k) for k in kernel)):
        shifted = torch.roll(x, tuple(lefts[a] - off[a] for a in range(dims)), dims=axes)
        out += torch.einsum("bc...,oc->bo...", shifted, weight[(slice(None), slice(None), *off)])
    if bias is not None:
        out += bias.view(1, -1, *([1] * dims))
    return out


@pytest.mark.parametrize(
    ("kernel", "shape"),
    [((2, 2, 2), (4, 5, 3)), ((3, 1, 2), (5, 4, 4)), ((1, 3, 3), (3, 3, 3))],
)
def test_periodic_conv3d_equals_the_direct_sum(kernel, shape) -> None:
    torch.manual_seed(0)
    conv = PeriodicConv3d(3, 4, kernel).double()
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    torch.testing.assert_close(conv(x), _direct_conv(x, conv.weight, conv.bias))


@pytest.mark.parametrize(
    ("kernel", "shape", "bias"),
    [
        ((2, 2, 2, 2), (4, 3, 5, 2), True),
        ((3, 1, 2, 3), (5, 4, 3, 4), False),
        ((1, 1, 1, 1), (2, 2, 2, 2), True),
        ((3, 3, 3, 3), (3, 4, 3, 5), True),
    ],
)
def test_periodic_conv4d_equals_the_direct_sum(kernel, shape, bias) -> None:
    """torch has no Conv4d: ours (one conv3d over the stacked time slices) against the definition."""
    torch.manual_seed(1)
    conv = PeriodicConv4d(3, 5, kernel, bias=bias).double()
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    out = conv(x)
    assert out.shape == (2, 5, *shape)
    torch.testing.assert_close(out, _direct_conv(x, conv.weight, conv.bias))
    # the parameters are those of a ConvNd and get gradients
    assert count_parameters(conv) == 5 * 3 * int(np.prod(kernel)) + (5 if bias else 0)
    out.sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_conv4d_initialisation_matches_convnd() -> None:
    """Same fan-in, same bounds as torch's ConvNd (here compared with a Conv3d of equal fan-in)."""
    torch.manual_seed(2)
    c4 = PeriodicConv4d(8, 16, (2, 2, 2, 2))
    c3 = torch.nn.Conv3d(8, 16, (4, 2, 2))  # fan-in 8 · 16 as well
    bound = 1 / np.sqrt(8 * 16)
    assert c4.weight.abs().max() <= bound and c4.bias.abs().max() <= bound
    s4, s3 = float(c4.weight.detach().std()), float(c3.weight.detach().std())
    assert abs(s4 - s3) < 0.2 * s3
    assert type(periodic_conv(8, 16, (2, 2, 2, 2))) is PeriodicConv4d


def _direct_pool(x: torch.Tensor, mode: str, kernel, stride) -> torch.Tensor:
    """Periodic windows by explicit index arithmetic (the padding rule of layers.periodic_padding)."""
    dims = len(kernel)
    sizes = x.shape[2:]
    lefts = [periodic_padding(k, s)[0] for k, s in zip(kernel, stride, strict=True)]
    outs = [
        (n + sum(periodic_padding(k, s)) - k) // s + 1
        for n, k, s in zip(sizes, kernel, stride, strict=True)
    ]
    out = torch.empty(x.shape[0], x.shape[1], *outs, dtype=x.dtype)
    for pos in itertools.product(*(range(o) for o in outs)):
        idx = [
            [(pos[a] * stride[a] + j - lefts[a]) % sizes[a] for j in range(kernel[a])]
            for a in range(dims)
        ]
        window = x[(slice(None), slice(None), *np.ix_(*idx))].reshape(x.shape[0], x.shape[1], -1)
        value = window.mean(-1) if mode == "avg" else window.amax(-1)
        out[(slice(None), slice(None), *pos)] = value
    return out


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize(
    ("kernel", "stride", "shape"),
    [
        ((2, 2, 2), (2, 2, 2), (4, 6, 4)),
        ((3, 2, 1), (1, 2, 1), (5, 5, 3)),  # stride 1 on some axes, odd extent (floor)
        ((2, 2, 2, 2), (2, 2, 2, 2), (4, 4, 6, 2)),
        ((3, 1, 2, 2), (2, 1, 1, 2), (5, 3, 4, 4)),  # a window wider than its stride wraps
    ],
)
def test_local_pooling_equals_explicit_windows(mode, kernel, stride, shape) -> None:
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    torch.testing.assert_close(
        LatticePool(mode, kernel, stride)(x), _direct_pool(x, mode, kernel, stride)
    )


def test_upsampling_in_3d_copies_blocks() -> None:
    y = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    up = NearestUpsample((1, 2, 3))(y)
    assert up.shape == (1, 1, 2, 4, 6)
    assert torch.equal(up[0, 0, 1, 3, 5], y[0, 0, 1, 1, 1])
    # the right inverse of the matching average pooling
    torch.testing.assert_close(LatticePool("avg", (1, 2, 3), (1, 2, 3))(up), y)


EQ_3D = {
    "family": "eq",
    "dims": 3,
    "layers": [
        {"type": "conv", "kernel": 2, "out": 6},
        {"type": "activation", "name": "tanh"},
        {"type": "conv", "kernel": [3, 1, 2], "out": 4},
        {"type": "activation", "name": "leaky_relu"},
        {"type": "max_pool", "kernel": 2, "stride": 1},
        {"type": "global_pool", "mode": "sum"},
        {"type": "linear", "out": 2},
    ],
}


@pytest.mark.parametrize("shape", [(4, 6, 5), (5, 3, 4), (3, 2, 2), (8, 8, 8)])
def test_eq_is_translation_invariant_on_any_3d_shape(shape) -> None:
    torch.manual_seed(3)
    model = build_model(EQ_3D, dtype=torch.float64)
    x = torch.randn(2, 6, *shape, dtype=torch.float64)
    shifts = lattice_shifts(*shape)
    assert len(shifts) == int(np.prod(shape))  # every shift, all axes
    assert translation_error(model, x) < 1e-12
    assert model.symmetry_shifts(*shape) == shifts


def test_eq_4d_and_lifted_presets_are_invariant() -> None:
    torch.manual_seed(4)
    x3 = torch.randn(2, 6, 4, 3, 5, dtype=torch.float64)
    x4 = torch.randn(2, 8, 3, 4, 3, 3, dtype=torch.float64)
    for name in ("counting/eq_1", "counting/eq_3", "detection/eq", "observables/eq"):
        assert translation_error(build_preset(name, dims=3, dtype=torch.float64), x3) < 1e-12
        assert translation_error(build_preset(name, dims=4, dtype=torch.float64), x4) < 1e-12


def test_st_is_invariant_under_stride_multiples_only() -> None:
    torch.manual_seed(5)
    st = build_preset("counting/st_1", dims=3, dtype=torch.float64)
    x = torch.randn(3, 6, 4, 6, 8, dtype=torch.float64)
    shifts = st.invariant_shifts(4, 6, 8)
    assert shifts == lattice_shifts(4, 6, 8, period=(2, 2, 2))
    assert translation_error(st, x, shifts) < 1e-12
    # negative control: a single step along any axis changes the output
    for axis in range(3):
        step = tuple(1 if a == axis else 0 for a in range(3))
        assert translation_error(st, x, [step]) > 1e-6


def test_site_outputs_in_3d() -> None:
    torch.manual_seed(6)
    eq = build_preset("localisation/eq", dims=3, dtype=torch.float64)
    x = torch.randn(2, 6, 4, 5, 3, dtype=torch.float64)
    assert eq(x).shape == (2, 1, 4, 5, 3)
    assert translation_error(eq, x) < 1e-12  # f(T x) = T f(x) for every shift
    st = build_preset("localisation/st", dims=3, dtype=torch.float64)
    y = torch.randn(2, 6, 6, 6, 6, dtype=torch.float64)
    assert st(y).shape == (2, 1, 6, 6, 6)
    assert translation_error(st, y, st.symmetry_shifts(6, 6, 6)) < 1e-12
    fl = build_preset("localisation/fl", dims=3)
    assert fl(torch.zeros(1, 6, 8, 8, 8)).shape == (1, 1, 8, 8, 8)


def test_lifted_presets_keep_layers_channels_and_biases() -> None:
    """The derivation rule: same layers, the space extent repeated; only the weight counts and,
    for fl, the flattened features change."""
    for name in list_presets():
        spec2 = preset_spec(name)
        if spec2["family"] == "eqr":
            with pytest.raises(SpecError, match="eqr"):
                preset_spec(name, dims=3)
            continue
        spec3 = preset_spec(name, dims=3)
        assert spec3["dims"] == 3 and "dims" not in spec2
        assert [layer["type"] for layer in spec3["layers"]] == [
            layer["type"] for layer in spec2["layers"]
        ]
        for a, b in zip(spec2["layers"], spec3["layers"], strict=True):
            assert a.get("out") == b.get("out") or (
                a["type"] == "linear" and spec2.get("output") == "site"
            )
            assert a.get("bias") == b.get("bias")
            k = a.get("kernel")
            if isinstance(k, list):
                assert b["kernel"] == [k[0], k[1], k[1]]
        model = build_preset(name, dims=3)
        assert model.dims == 3 and model.in_channels == 6
        if spec2.get("input_size"):
            nt, nx = spec2["input_size"]
            assert list(model.input_size) == [nt, nx, nx]
    # counted by hand: counting/eq_1 in 3D, conv 6·32 + 32·8·8 + 8·16·8 + 16·8, linear 8
    assert count_parameters(build_preset("counting/eq_1", dims=3)) == 192 + 2048 + 1024 + 128 + 8
    # counting/fl_1: 8×8×8 -> 2×2×2 after two poolings, flatten 8 · 8 = 64 features
    fl = build_preset("counting/fl_1", dims=3)
    assert fl.spec["layers"][7] == {"type": "linear", "in": 64, "out": 4, "bias": False}


def test_2d_specs_are_unchanged() -> None:
    """2D presets normalise exactly as before: no dims key, 4 input channels (their checkpoints
    and hyperparameters are the same)."""
    for name in ("counting/eq_1", "detection/fl", "localisation/st"):
        model = build_preset(name)
        assert "dims" not in model.spec and model.dims == 2 and model.in_channels == 4
        assert lift_spec(preset_spec(name), 2) == preset_spec(name)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"family": "eq", "dims": 3, "layers": [{"type": "conv", "kernel": [2, 2], "out": 1}]},
         r"'kernel' must be an int or a list of 3 extents"),
        ({"family": "eq", "dims": 5, "layers": []}, r"'dims' must be 2, 3 or 4"),
        ({"family": "fl", "dims": 3, "input_size": [8, 8], "layers": [{"type": "flatten"}]},
         r"'input_size' must be a list of 3 extents"),
        ({"family": "eqr", "dims": 3, "group": ["P"], "layers": []}, r"family 'eqr' acts on 2D"),
        ({"family": "eq", "dims": 3, "layers": [{"type": "group_pool", "mode": "avg"}]},
         r"eqr layers act on 2D lattices only"),
    ],
)  # fmt: skip
def test_bad_d_dimensional_specs(spec, match) -> None:
    with pytest.raises(SpecError, match=match):
        build_model(spec)


def test_wrong_input_dimension_is_refused() -> None:
    model = build_preset("counting/eq_1", dims=3)
    with pytest.raises(ValueError, match=r"\(B, 6, N_0, \.\.\., N_2\)"):
        model(torch.zeros(1, 4, 8, 8))
    with pytest.raises(SpecError, match="3-dimensional"):
        model.trace((8, 8))
    fl = build_preset("counting/fl_1", dims=3)
    with pytest.raises(ValueError, match=r"built for 8×8×8 lattices"):
        fl(torch.zeros(1, 6, 8, 8, 16))
