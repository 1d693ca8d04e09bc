"""Spec format, family rules, bad input and the lattice layers' conventions."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from scalar_ml.models import (
    FloorPoolingWarning,
    SpecError,
    build_model,
    build_preset,
    count_parameters,
)
from scalar_ml.models.layers import GlobalPool2d, LatticePool2d, PeriodicConv2d, periodic_padding

CONV = {"type": "conv", "kernel": 2, "out": 4}
ACT = {"type": "activation", "name": "leaky_relu"}
GAP = {"type": "global_pool", "mode": "avg"}
LIN = {"type": "linear", "out": 1}
POOL2 = {"type": "avg_pool", "kernel": 2, "stride": 2}


def spec(family: str, *layers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"family": family, "layers": list(layers), **extra}


def refused(model_spec: Any, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        build_model(model_spec)


# --- family rules -----------------------------------------------------------------------------


def test_eq_refuses_strided_pooling_naming_the_layer() -> None:
    refused(
        spec("eq", CONV, POOL2, GAP, LIN),
        "layer 1 (avg_pool): stride [2, 2] > 1 is not allowed in family 'eq'",
    )


def test_eq_refuses_flatten() -> None:
    refused(
        spec("eq", CONV, {"type": "flatten"}, LIN),
        "layer 1 (flatten): flatten is not allowed in family 'eq'",
    )


def test_st_refuses_flatten_and_fl_refuses_global_pooling() -> None:
    refused(
        spec("st", CONV, POOL2, {"type": "flatten"}, LIN),
        "layer 2 (flatten): flatten is not allowed in family 'st'",
    )
    refused(
        spec("fl", CONV, GAP, LIN, input_size=[8, 8]),
        "layer 1 (global_pool): global pooling is not allowed in family 'fl'",
    )


def test_missing_and_repeated_reductions() -> None:
    refused(spec("eq", CONV, ACT), "family 'eq' needs one global_pool layer")
    refused(
        spec("st", CONV, GAP, ACT, GAP),
        "layer 3 (global_pool): a second global_pool (the first is layer 1)",
    )
    refused(
        spec("fl", CONV, LIN, input_size=[8, 8]),
        "family 'fl' needs one flatten layer after the lattice layers; found none",
    )
    refused(
        spec("fl", CONV, LIN, {"type": "flatten"}, LIN, input_size=[8, 8]),
        "layer 1 (linear): dense layer before the flatten at layer 2",
    )


def test_layer_order_within_a_family() -> None:
    refused(
        spec("eq", CONV, GAP, CONV, LIN),
        "layer 2 (conv): lattice layer after the global_pool at layer 1",
    )
    refused(
        spec("st", CONV, LIN, GAP),
        "layer 1 (linear): dense layer before the global_pool at layer 2",
    )
    refused(spec("st", CONV, GAP, POOL2), "layer 2 (avg_pool): lattice layer after the global_pool")


def test_fl_needs_input_size_and_a_dense_layer() -> None:
    refused(spec("fl", CONV, {"type": "flatten"}, LIN), "family 'fl' needs input_size: [nt, nx]")
    refused(
        spec("fl", CONV, {"type": "flatten"}, ACT, input_size=[4, 4]),
        "family 'fl' needs at least one linear layer after the flatten at layer 1",
    )


def test_unknown_family_and_empty_layers() -> None:
    refused(spec("cnn", CONV, GAP), "unknown family 'cnn'; expected one of eq, st, fl, eqr")
    refused(spec("eq"), "family 'eq' needs at least one layer")
    refused({"layers": [CONV, GAP]}, "'family' must be one of eq, st, fl, eqr, got None")


def test_st_and_eq_accept_what_their_rules_allow() -> None:
    st = build_model(spec("st", CONV, ACT, POOL2, CONV, GAP, LIN, ACT, LIN))
    assert st.family == "st" and st.out_features == 1
    eq = build_model(spec("EQ", CONV, {"type": "max_pool", "kernel": 3, "stride": 1}, GAP))
    assert eq.family == "eq" and eq.out_features == 4  # stride-1 pooling keeps equivariance


# --- layer specs --------------------------------------------------------------------------------


def test_unknown_layer_types_and_keys() -> None:
    refused(
        spec("eq", {"type": "conv2d", "kernel": 2, "out": 4}, GAP),
        "layer 0 (conv2d): unknown layer type 'conv2d'",
    )
    refused(
        spec("eq", CONV, {"type": "leaky_relu"}, GAP),
        "activations are written {type: activation, name: leaky_relu}",
    )
    refused(
        spec("eq", {"type": "conv", "kernal": 2, "out": 4}, GAP),
        "layer 0 (conv): unknown key(s) ['kernal']",
    )
    refused(
        spec("eq", {**CONV, "stride": 2}, GAP),
        "convolutions are stride 1 and periodically padded; strides belong to pooling layers",
    )
    refused(spec("eq", "conv", GAP), "layer 0: a layer spec must be a mapping")
    refused(
        {**spec("eq", CONV, GAP), "optimizer": "adam"}, "model spec: unknown key(s) ['optimizer']"
    )


def test_zero_channels_and_bad_numbers() -> None:
    refused(
        spec("eq", {**CONV, "out": 0}, GAP),
        "layer 0 (conv): 'out' must be a positive integer, got 0",
    )
    refused(
        spec("eq", CONV, GAP, {**LIN, "out": 0}),
        "layer 2 (linear): 'out' must be a positive integer, got 0",
    )
    refused(
        spec("eq", {**CONV, "kernel": 0}, GAP),
        "layer 0 (conv): 'kernel' must be a positive integer, got 0",
    )
    refused(
        spec("eq", {**CONV, "kernel": True}, GAP), "'kernel' must be a positive integer, got True"
    )
    refused(
        spec("eq", {**CONV, "kernel": [2, 2, 2]}, GAP), "'kernel' must be an int or [time, space]"
    )
    refused(spec("eq", {**CONV, "out": 2.5}, GAP), "'out' must be a positive integer, got 2.5")
    refused(spec("eq", {**CONV, "bias": "no"}, GAP), "layer 0 (conv): 'bias' must be true or false")
    refused(
        spec("eq", {"type": "conv", "out": 4}, GAP), "layer 0 (conv): missing required key 'kernel'"
    )
    refused(
        spec("eq", CONV, {"type": "global_pool", "mode": "mean"}, LIN),
        "layer 1 (global_pool): 'mode' must be one of",
    )
    refused({**spec("eq", CONV, GAP), "in_channels": 0}, "'in_channels' must be a positive integer")
    refused(
        spec("fl", CONV, {"type": "flatten"}, LIN, input_size=[8]),
        "'input_size' must be [nt, nx] or null",
    )


def test_activation_names_and_options() -> None:
    refused(
        spec("eq", CONV, {"type": "activation", "name": "swish"}, GAP),
        "layer 1 (activation): unknown activation 'swish'",
    )
    refused(
        spec("eq", CONV, {"type": "activation", "name": "relu", "negative_slope": 0.1}, GAP),
        "layer 1 (activation): unknown key(s) ['negative_slope']",
    )
    model = build_model(
        spec("eq", CONV, {"type": "activation", "name": "leaky_relu", "negative_slope": 0.3}, GAP)
    )
    assert model.layers[1].negative_slope == 0.3
    for name in ("relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus", "identity"):
        build_model(spec("eq", CONV, {"type": "activation", "name": name}, GAP))


def test_declared_in_sizes_are_checked_against_inferred_ones() -> None:
    refused(
        spec("eq", CONV, {"type": "conv", "kernel": 1, "in": 8, "out": 2}, GAP),
        "layer 1 (conv): in = 8 but the previous layers give 4 channels",
    )
    refused(
        spec("eq", CONV, GAP, {**LIN, "in": 5}),
        "layer 2 (linear): in = 5 but global_pool gives 4 features",
    )
    # the seed's task-3 FL slide writes "Linear(8, 4)" for 8 channels on a 2×2 lattice:
    slide_literal = spec(
        "fl",
        {"type": "conv", "kernel": 2, "out": 8},
        POOL2,
        POOL2,
        {"type": "flatten"},
        {"type": "linear", "in": 8, "out": 4},
        input_size=[8, 8],
    )
    refused(
        slide_literal,
        "layer 4 (linear): in = 8 but flatten gives 32 features (8 channels × 2×2 lattice, from input 8×8)",
    )


def test_linear_in_features_are_inferred() -> None:
    model = build_model(
        spec(
            "fl", CONV, POOL2, {"type": "flatten"}, {"type": "linear", "out": 3}, input_size=[6, 4]
        )
    )
    assert model.layers[-1].in_features == 4 * 3 * 2
    assert model.spec["layers"][-1] == {"type": "linear", "out": 3, "bias": True, "in": 24}


def test_omegaconf_specs_are_accepted() -> None:
    cfg = OmegaConf.create({"family": "eq", "layers": [CONV, ACT, GAP, LIN]})
    model = build_model(cfg)
    assert count_parameters(model) == 4 * 4 * 4 + 4 + 4 + 1
    assert isinstance(model.spec["layers"], list)


# --- lattice sizes at forward time -----------------------------------------------------------


def test_fl_refuses_other_lattice_sizes_naming_both() -> None:
    model = build_preset("detection/fl")
    with pytest.raises(ValueError, match="built for 8×8 lattices and got a 16×16 input"):
        model(torch.zeros(1, 4, 16, 16))


def test_kernel_larger_than_lattice() -> None:
    eq = build_model(spec("eq", {"type": "conv", "kernel": [3, 2], "out": 2}, GAP))
    with pytest.raises(
        SpecError,
        match=re.escape(
            "layer 0 (conv): kernel 3×2 is larger than the 2×2 lattice it receives (input 2×2)"
        ),
    ):
        eq(torch.zeros(1, 4, 2, 2))
    assert eq(torch.zeros(1, 4, 3, 2)).shape == (1, 2)  # kernel equal to the lattice is fine
    st = build_preset("counting/st_3")  # 3×3 conv after one stride-2 pooling
    with pytest.raises(
        SpecError,
        match=re.escape(
            "layer 3 (conv): kernel 3×3 is larger than the 2×2 lattice it receives (input 4×4)"
        ),
    ):
        st(torch.zeros(1, 4, 4, 4))
    refused(
        spec(
            "fl",
            {"type": "conv", "kernel": 3, "out": 2},
            POOL2,
            {"type": "conv", "kernel": 3, "out": 2},
            {"type": "flatten"},
            LIN,
            input_size=[4, 4],
        ),
        "layer 2 (conv): kernel 3×3 is larger than the 2×2 lattice it receives (input 4×4)",
    )


def test_floor_pooling_warns_once_per_instance() -> None:
    first, second = build_preset("counting/st_2"), build_preset("counting/st_2")
    x = torch.zeros(1, 4, 9, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first(x)
        first(torch.zeros(1, 4, 8, 9))
        first(x)
        second(x)
    floor = [w for w in caught if issubclass(w.category, FloorPoolingWarning)]
    assert len(floor) == 2  # one per model instance
    assert "layer 2 (max_pool): stride 2 does not divide the time extent 9" in str(floor[0].message)


def test_bad_input_tensors() -> None:
    model = build_preset("counting/eq_1")
    with pytest.raises(ValueError, match=re.escape("expected input of shape (B, 4, Nt, Nx)")):
        model(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match=re.escape("got (2, 3, 8, 8)")):
        model(torch.zeros(2, 3, 8, 8))
    with pytest.raises(
        TypeError,
        match=re.escape("input dtype torch.float64 does not match the model's torch.float32"),
    ):
        model(torch.zeros(2, 4, 8, 8, dtype=torch.float64))


# --- layer conventions ---------------------------------------------------------------------------


def naive_periodic_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """out[o, t, s] = Σ w[o, c, i, j] x[c, (t + i − (kt−1)//2) % Nt, (s + j − (kx−1)//2) % Nx]."""
    _, _, nt, nx = x.shape
    out_c, _, kt, kx = weight.shape
    out = torch.zeros(x.shape[0], out_c, nt, nx, dtype=x.dtype)
    lt, lx = (kt - 1) // 2, (kx - 1) // 2
    for t in range(nt):
        for s in range(nx):
            rows = [(t + i - lt) % nt for i in range(kt)]
            cols = [(s + j - lx) % nx for j in range(kx)]
            patch = x[:, :, rows][:, :, :, cols]
            out[:, :, t, s] = torch.einsum("bcij,ocij->bo", patch, weight)
    return out


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (4, 4), (2, 3), (4, 1)])
def test_periodic_conv_matches_the_documented_padding_rule(kernel: tuple[int, int]) -> None:
    conv = PeriodicConv2d(3, 2, kernel, bias=False).double()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(conv(x), naive_periodic_conv(x, conv.weight.detach()))


def test_even_kernel_pads_one_side() -> None:
    assert periodic_padding(2) == (0, 1)
    assert periodic_padding(4) == (1, 2)
    conv = PeriodicConv2d(1, 1, (2, 2), bias=False)
    conv.weight.data.fill_(1.0)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0  # a point source at the origin reaches sites t, x ∈ {0, −1}
    hit = {tuple(i) for i in torch.nonzero(conv(x)[0, 0]).tolist()}
    assert hit == {(0, 0), (3, 0), (0, 3), (3, 3)}


def test_local_pooling_periodic_windows() -> None:
    x = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(LatticePool2d("avg", (2, 2), (2, 2))(x), torch.nn.AvgPool2d(2, 2)(x))
    torch.testing.assert_close(LatticePool2d("max", (2, 2), (2, 2))(x), torch.nn.MaxPool2d(2, 2)(x))
    wrapped = LatticePool2d("avg", (3, 1), (2, 1))(x)  # windows wider than the stride wrap around
    assert wrapped.shape == (2, 3, 4, 6)
    torch.testing.assert_close(wrapped[:, :, 3], (x[:, :, 6] + x[:, :, 7] + x[:, :, 0]) / 3)
    floor = LatticePool2d("avg", (2, 2), (2, 2))(torch.randn(1, 1, 5, 5))
    assert floor.shape == (1, 1, 2, 2)


def test_global_pooling_modes() -> None:
    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    assert GlobalPool2d("sum")(x).tolist() == [[66.0, 210.0]]
    assert GlobalPool2d("avg")(x).tolist() == [[5.5, 17.5]]
    assert GlobalPool2d("max")(x).tolist() == [[11.0, 23.0]]
