"""Site-output networks (``output: site``): spec, family rules, shapes, counts, API, a learning check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from scalar_ml.models import (
    Head,
    SpecError,
    build_model,
    build_preset,
    count_parameters,
    lattice_shifts,
)
from scalar_ml.models.layers import NearestUpsample2d

SITE_SPECS = Path(__file__).parent / "site_specs"
#: The examples' parameter counts, recounted by hand in their YAML comments.
EXAMPLE_COUNTS = {
    "eq": (4 * 16 * 9 + 16) + (16 * 16 + 16) + (16 + 1),
    "st": (4 * 16 * 4 + 16) + (16 * 16 * 9 + 16) + (16 * 8 * 9 + 8) + (8 + 1),
    "fl": (4 * 8 * 4 + 8) + (128 * 64 + 64) + (64 * 64 + 64),
}

CONV = {"type": "conv", "kernel": 2, "out": 4}
ACT = {"type": "activation", "name": "leaky_relu"}
SIGMOID = {"type": "activation", "name": "sigmoid"}
GAP = {"type": "global_pool", "mode": "avg"}
LIN = {"type": "linear", "out": 1}
POOL2 = {"type": "avg_pool", "kernel": 2, "stride": 2}
UP2 = {"type": "upsample", "factor": 2}
FLAT = {"type": "flatten"}
UNFLAT = {"type": "unflatten"}


def example(family: str) -> dict[str, Any]:
    spec = OmegaConf.to_container(OmegaConf.load(SITE_SPECS / f"{family}.yaml"))
    assert isinstance(spec, dict)
    return spec


def site(family: str, *layers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"family": family, "output": "site", "layers": list(layers), **extra}


def refused(model_spec: Any, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        build_model(model_spec)


def random_configs(
    batch: int, nt: int, nx: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    k = torch.randint(-2, 3, (batch, 2, nt, nx))
    l = torch.randint(0, 4, (batch, 2, nt, nx))
    return torch.cat([k, l], dim=1).to(dtype)


# --- the three examples -------------------------------------------------------------------------

SIZES = {
    "eq": [(8, 8), (5, 7), (16, 4), (3, 11), (60, 4)],
    "st": [(8, 8), (6, 6), (8, 12), (10, 14), (60, 4 * 2)],
    "fl": [(8, 8)],
}


@pytest.mark.parametrize("family", ["eq", "st", "fl"])
def test_examples_build_with_their_hand_counted_parameters(family: str) -> None:
    model = build_model(example(family))
    assert count_parameters(model) == EXAMPLE_COUNTS[family]
    assert model.family == family and model.output == "site" and model.out_features == 1
    assert model.ends_with_sigmoid
    assert model.input_size == ((8, 8) if family == "fl" else None)


@pytest.mark.parametrize("family", ["eq", "st", "fl"])
def test_output_has_the_input_lattice_shape(family: str) -> None:
    model = build_model(example(family))
    for size in SIZES[family]:
        x = random_configs(3, *size)
        out = model(x)
        assert out.shape == (3, 1, *size), size
        assert ((out > 0) & (out < 1)).all()
        torch.testing.assert_close(torch.sigmoid(model.logits(x)), out)  # BCE-with-logits per site
        assert model.trace(size).output_size == size


@pytest.mark.parametrize("family", ["eq", "st", "fl"])
def test_normalised_spec_rebuilds_the_same_site_network(family: str) -> None:
    model = build_model(example(family))
    assert model.spec["output"] == "site"
    rebuilt = build_model(model.spec)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.spec == model.spec
    x = random_configs(2, 8, 8)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("family", ["eq", "st", "fl"])
def test_gradients_reach_every_parameter_of_a_site_network(family: str) -> None:
    model = build_model(example(family))
    model.logits(random_configs(4, 8, 8)).square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("family", ["eq", "st", "fl"])
def test_integer_inputs_and_float64(family: str) -> None:
    model = build_model(example(family))
    ints = random_configs(2, 8, 8).to(torch.int32)
    torch.testing.assert_close(model(ints), model(ints.float()), rtol=0, atol=0)
    model64 = build_model(example(family), dtype=torch.float64)
    model64.load_state_dict(model.state_dict())
    torch.testing.assert_close(model64(ints).float(), model(ints), rtol=1e-5, atol=1e-6)


def test_fl_site_network_takes_only_its_lattice() -> None:
    with pytest.raises(ValueError, match="built for 8×8 lattices and got a 8×6 input"):
        build_model(example("fl"))(random_configs(1, 8, 6))


def test_site_and_configuration_networks_differ_only_where_they_should() -> None:
    """Same weights: the eq site example is the per-site map whose sum a sum-pooled network reports."""
    layers = example("eq")["layers"][:-1]  # without the sigmoid
    per_site = build_model({"family": "eq", "output": "site", "layers": layers})
    pooled = build_model(
        {"family": "eq", "layers": [*layers, {"type": "global_pool", "mode": "sum"}]}
    )
    pooled.load_state_dict(per_site.state_dict())
    x = random_configs(3, 6, 5)
    torch.testing.assert_close(pooled(x), per_site(x).sum(dim=(-2, -1)))


# --- output key and LatticeNet API ----------------------------------------------------------------


def test_output_defaults_to_configuration_and_is_validated() -> None:
    model = build_preset("counting/eq_1")
    assert model.output == "configuration" and model.spec["output"] == "configuration"
    refused(
        {**site("eq", CONV), "output": "sites"},
        "model spec: 'output' must be one of configuration, site, got 'sites'",
    )


def test_no_reduction_without_output_site_is_an_error_with_a_hint() -> None:
    refused(
        {"family": "eq", "layers": [CONV, ACT, {"type": "conv", "kernel": 1, "out": 1}]},
        "family 'eq' needs one global_pool layer after the lattice layers; found none (a network "
        "whose output is a lattice field is output: site)",
    )


def test_site_networks_report_equivariant_not_invariant_shifts() -> None:
    eq = build_model(example("eq"))
    assert eq.symmetry_shifts(4, 3) == lattice_shifts(4, 3)
    with pytest.raises(ValueError, match=r"equivariant .* not invariant; use symmetry_shifts"):
        eq.invariant_shifts(4, 3)
    st = build_model(example("st"))
    assert st.symmetry_shifts(8, 12) == lattice_shifts(8, 12, period=(2, 2))
    assert build_model(example("fl")).symmetry_shifts(8, 8) == [(0, 0)]
    configuration = build_preset("detection/st")
    assert configuration.symmetry_shifts(8, 8) == configuration.invariant_shifts(8, 8)


@pytest.mark.parametrize(
    ("layers", "period"),
    [
        ([CONV, POOL2, CONV, UP2], (2, 2)),
        ([CONV, POOL2, CONV, POOL2, CONV, {"type": "upsample", "factor": 4}], (4, 4)),
        ([CONV, POOL2, CONV, UP2, CONV, POOL2, CONV, UP2], (2, 2)),  # back to scale 1 in between
        ([CONV, UP2, CONV, POOL2, CONV], (1, 1)),  # finer lattice first: every shift passes
        (
            [
                CONV,
                {"type": "max_pool", "kernel": [2, 1], "stride": [2, 1]},
                CONV,
                {"type": "upsample", "factor": [2, 1]},
            ],
            (2, 1),
        ),
    ],
    ids=["pool-up", "pool-pool-up4", "pool-up-pool-up", "up-pool", "time-only"],
)
def test_trace_period_of_encoder_decoders(
    layers: list[dict[str, Any]], period: tuple[int, int]
) -> None:
    model = build_model(site("st", *layers))
    trace = model.trace((8, 8))
    assert trace.output_size == (8, 8) and trace.period == period
    assert model(random_configs(1, 8, 8)).shape == (1, 4, 8, 8)


def test_upsample_is_the_documented_nearest_copy() -> None:
    y = torch.randn(2, 3, 4, 5)
    up = NearestUpsample2d((2, 3))(y)
    assert up.shape == (2, 3, 8, 15)
    for t in range(8):
        for x in range(15):
            torch.testing.assert_close(up[:, :, t, x], y[:, :, t // 2, x // 3], rtol=0, atol=0)
    pooled = nn.AvgPool2d((2, 3))(up)  # the right inverse of the matching pooling
    torch.testing.assert_close(pooled, y)
    assert count_parameters(NearestUpsample2d((2, 2))) == 0
    with pytest.raises(ValueError, match="upsampling factors must be >= 1"):
        NearestUpsample2d((0, 2))


# --- family rules for site outputs ------------------------------------------------------------------


def test_global_pooling_is_refused_in_every_site_family() -> None:
    message = "global pooling is not allowed in a site-output network"
    refused(site("eq", CONV, GAP), f"layer 1 (global_pool): {message}")
    refused(site("st", CONV, POOL2, GAP, UP2), f"layer 2 (global_pool): {message}")
    refused(
        site("fl", CONV, GAP, FLAT, LIN, UNFLAT, input_size=[4, 4]),
        f"layer 1 (global_pool): {message}",
    )


def test_eq_site_is_fully_convolutional() -> None:
    refused(
        site("eq", CONV, LIN),
        "layer 1 (linear): a dense layer is not allowed in a site-output eq network (there are no "
        "reduced features; a 1×1 conv is the dense layer applied at every site)",
    )
    refused(
        site("eq", CONV, UP2),
        "layer 1 (upsample): upsampling is not allowed in family 'eq' (an eq network stays on its "
        "input lattice; strided pooling with upsampling is family 'st')",
    )
    refused(
        site("eq", CONV, POOL2, UP2),
        "layer 1 (avg_pool): stride [2, 2] > 1 is not allowed in family 'eq'",
    )
    refused(site("eq", CONV, FLAT), "layer 1 (flatten): flatten is not allowed in family 'eq'")
    refused(
        site("eq", CONV, UNFLAT), "layer 1 (unflatten): unflatten is not allowed in family 'eq'"
    )
    stride_one = build_model(site("eq", CONV, {"type": "max_pool", "kernel": 3, "stride": 1}, ACT))
    assert stride_one(random_configs(1, 5, 4)).shape == (1, 4, 5, 4)


def test_st_site_upsampling_must_undo_the_strides() -> None:
    refused(
        site(
            "st",
            CONV,
            POOL2,
            {"type": "conv", "kernel": 1, "out": 1},
            {"type": "upsample", "factor": [2, 1]},
        ),
        "layer 3 (upsample): the upsampling factors multiply to [2, 1] per axis (time, space) but the "
        "pooling strides to [2, 2]; a site-output network must end on its input lattice",
    )
    refused(
        site("st", CONV, POOL2, CONV),
        "layer 1 (avg_pool): strided pooling shrinks the lattice by [2, 2] per axis (time, space) and "
        "no upsample restores it; a site-output network must end on its input lattice",
    )
    refused(site("st", CONV, UP2), "layer 1 (upsample): the upsampling factors multiply to [2, 2]")
    refused(
        site("st", CONV, POOL2, UP2, LIN),
        "layer 3 (linear): a dense layer is not allowed in a site-output st network",
    )
    refused(
        site("st", CONV, UNFLAT), "layer 1 (unflatten): unflatten is not allowed in family 'st'"
    )
    assert build_model(site("st", CONV, ACT)).output == "site"  # no pooling: nothing to restore


def test_st_site_refuses_lattices_its_strides_do_not_divide_naming_the_layer() -> None:
    model = build_model(example("st"))
    message = (
        "layer 2 (avg_pool): stride 2 does not divide the time extent 9 of the 9×8 lattice it "
        "receives (input 9×8); a network whose output is a lattice field needs strides that divide "
        "the lattice, or upsampling cannot give back the input lattice"
    )
    with pytest.raises(SpecError, match=re.escape(message)):
        model(random_configs(1, 9, 8))
    with pytest.raises(SpecError, match=re.escape(message)):
        model.symmetry_shifts(9, 8)
    refused(
        {**example("st"), "input_size": [9, 8]}, message
    )  # an optional input_size is checked at build
    deeper = build_model(
        site("st", CONV, POOL2, CONV, POOL2, CONV, {"type": "upsample", "factor": 4})
    )
    with pytest.raises(
        SpecError,
        match=re.escape(
            "layer 3 (avg_pool): stride 2 does not divide the space extent 3 of the 4×3 lattice"
        ),
    ):
        deeper(random_configs(1, 8, 6))


def test_kernels_must_fit_the_upsampled_and_coarse_lattices() -> None:
    model = build_model(example("st"))  # a 3×3 conv on the half-size lattice
    with pytest.raises(
        SpecError,
        match=re.escape(
            "layer 3 (conv): kernel 3×3 is larger than the 2×2 lattice it receives (input 4×4)"
        ),
    ):
        model(random_configs(1, 4, 4))


def test_upsample_and_unflatten_need_output_site() -> None:
    refused(
        {"family": "st", "layers": [CONV, POOL2, UP2, GAP, LIN]},
        "layer 2 (upsample): upsample is only allowed in a site-output network (output: site); a "
        "configuration output reduces the lattice once and never restores it",
    )
    refused(
        {
            "family": "fl",
            "input_size": [4, 4],
            "layers": [CONV, FLAT, {"type": "linear", "out": 16}, UNFLAT],
        },
        "layer 3 (unflatten): unflatten is only allowed in a site-output network (output: site)",
    )


def test_fl_site_structure() -> None:
    size = {"input_size": [4, 4]}
    lin16 = {"type": "linear", "out": 16}
    refused(
        site("fl", CONV, FLAT, lin16, **size),
        "family 'fl' with output: site needs one unflatten layer after the dense layers",
    )
    refused(
        site("fl", CONV, lin16, UNFLAT, **size),
        "family 'fl' needs one flatten layer after the lattice layers; found none",
    )
    refused(
        site("fl", CONV, FLAT, lin16, UNFLAT, FLAT, **size),
        "layer 4 (flatten): a second flatten (the first is layer 1)",
    )
    refused(
        site("fl", CONV, FLAT, lin16, UNFLAT, UNFLAT, **size),
        "layer 4 (unflatten): a second unflatten (the first is layer 3)",
    )
    refused(
        site("fl", UNFLAT, CONV, FLAT, lin16, **size),
        "layer 0 (unflatten): unflatten before the flatten at layer 2",
    )
    refused(
        site("fl", CONV, FLAT, UNFLAT, **size),
        "needs at least one linear layer between the flatten at layer 1 and the unflatten at layer 2",
    )
    refused(
        site("fl", CONV, FLAT, CONV, lin16, UNFLAT, **size),
        "layer 2 (conv): lattice layer between the flatten at layer 1 and the unflatten at layer 4",
    )
    refused(
        site("fl", LIN, CONV, FLAT, lin16, UNFLAT, **size),
        "layer 0 (linear): dense layer before the flatten at layer 2",
    )
    refused(
        site("fl", CONV, FLAT, lin16, UNFLAT, LIN, **size),
        "layer 4 (linear): dense layer after the unflatten at layer 3",
    )
    refused(
        site("fl", CONV, FLAT, lin16, UNFLAT, POOL2, **size),
        "layer 4 (avg_pool): strided pooling after the unflatten at layer 3",
    )
    refused(
        site("fl", CONV, POOL2, UP2, FLAT, lin16, UNFLAT, **size),
        "layer 2 (upsample): upsampling is not allowed in family 'fl'",
    )
    refused(site("fl", CONV, FLAT, lin16, UNFLAT), "family 'fl' needs input_size: [nt, nx]")
    # size-keeping lattice layers after the unflatten are fine and see the input lattice:
    model = build_model(
        site(
            "fl",
            CONV,
            FLAT,
            {"type": "linear", "out": 32},
            UNFLAT,
            ACT,
            {"type": "conv", "kernel": 3, "out": 3},
            SIGMOID,
            **size,
        )
    )
    assert model.out_features == 3 and model(random_configs(2, 4, 4)).shape == (2, 3, 4, 4)
    refused(
        site("fl", CONV, FLAT, lin16, UNFLAT, {"type": "conv", "kernel": 5, "out": 1}, **size),
        "layer 4 (conv): kernel 5×5 is larger than the 4×4 lattice it receives (input 4×4)",
    )


def test_unflatten_checks_the_feature_count() -> None:
    size = {"input_size": [4, 4]}
    refused(
        site("fl", CONV, FLAT, {"type": "linear", "out": 20}, UNFLAT, **size),
        "layer 3 (unflatten): the previous linear layer gives 20 features, not a multiple of the 4×4 = 16 sites of the input lattice",
    )
    refused(
        site(
            "fl",
            CONV,
            FLAT,
            {"type": "linear", "out": 32},
            {"type": "unflatten", "channels": 1},
            **size,
        ),
        "layer 3 (unflatten): channels = 1 but the previous linear layer gives 32 features = 2 channels × 4×4 sites",
    )
    refused(
        site("fl", CONV, FLAT, LIN, {"type": "unflatten", "channels": 0}, **size),
        "layer 3 (unflatten): 'channels' must be a positive integer, got 0",
    )
    refused(
        site("fl", CONV, FLAT, LIN, {"type": "unflatten", "shape": [1, 4, 4]}, **size),
        "layer 3 (unflatten): unknown key(s) ['shape']",
    )


def test_upsample_spec_validation() -> None:
    refused(
        site("st", CONV, POOL2, {"type": "upsample"}),
        "layer 2 (upsample): missing required key 'factor'",
    )
    refused(
        site("st", CONV, POOL2, {"type": "upsample", "factor": 0}),
        "layer 2 (upsample): 'factor' must be a positive integer, got 0",
    )
    refused(
        site("st", CONV, POOL2, {"type": "upsample", "factor": 2, "mode": "bilinear"}),
        "layer 2 (upsample): 'mode' must be one of ['nearest'], got 'bilinear'",
    )
    refused(
        site("st", CONV, POOL2, {"type": "upsample", "factor": 2, "align_corners": True}),
        "layer 2 (upsample): unknown key(s) ['align_corners']",
    )
    model = build_model(site("st", CONV, POOL2, UP2))
    assert model.spec["layers"][2] == {"type": "upsample", "factor": [2, 2], "mode": "nearest"}


# --- Head ---------------------------------------------------------------------------------------------


def test_head_describes_an_output_without_a_task() -> None:
    head = Head(2, None, per_site=True)
    assert head.output == "site" and Head(1).output == "configuration"
    assert Head.parse(
        OmegaConf.create({"outputs": 1, "activation": "sigmoid", "per_site": True})
    ) == Head(1, "sigmoid", True)
    assert Head.parse(head) is head
    with pytest.raises(SpecError, match=re.escape("head: unknown activation 'swish'")):
        Head(1, "swish")
    with pytest.raises(
        SpecError, match=re.escape("head: 'per_site' must be true or false, got 'yes'")
    ):
        Head(1, None, "yes")  # type: ignore[arg-type]
    with pytest.raises(
        SpecError, match=re.escape("head: 'outputs' must be a positive integer, got True")
    ):
        Head(True)
    with pytest.raises(SpecError, match=re.escape("head: missing required key 'outputs'")):
        Head.parse({"per_site": True})
    with pytest.raises(SpecError, match=re.escape("head must be a mapping with 'outputs', got 3")):
        Head.parse(3)  # type: ignore[arg-type]


# --- it learns a local map ------------------------------------------------------------------------------


def abs_divergence(k: torch.Tensor) -> torch.Tensor:
    """|div_x k| = |Σ_ν (k_{x,ν} − k_{x−ν̂,ν})| per site (SPEC §2), shape (B, 1, Nt, Nx)."""
    kt, kx = k[:, 0], k[:, 1]
    div = kt - torch.roll(kt, 1, dims=-2) + kx - torch.roll(kx, 1, dims=-1)
    return div.abs().unsqueeze(1)


def fit_abs_divergence(kernel: int, steps: int = 300) -> tuple[float, torch.Tensor, nn.Module]:
    """Train a two-layer eq site network on |div k| of 32 random 8×8 fields; return the final MSE."""
    model = build_model(
        site(
            "eq",
            {"type": "conv", "kernel": kernel, "out": 8},
            {"type": "activation", "name": "relu"},
            {"type": "conv", "kernel": 1, "out": 1},
        ),
        dtype=torch.float64,
    )
    k = torch.randint(-1, 2, (32, 2, 8, 8))
    x = torch.cat([k, torch.randint(0, 3, (32, 2, 8, 8))], dim=1)
    y = abs_divergence(k).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.item(), y, model


def test_eq_site_network_learns_a_local_map_and_applies_it_on_any_lattice() -> None:
    """|div k| needs the backward neighbours: a 3×3 kernel sees them, a 1×1 kernel cannot."""
    loss, y, model = fit_abs_divergence(kernel=3)
    assert loss < 1e-3 * float(y.var())
    k = torch.randint(-1, 2, (4, 2, 11, 5))  # an unseen, odd, non-square lattice
    x = torch.cat([k, torch.randint(0, 3, (4, 2, 11, 5))], dim=1)
    with torch.no_grad():
        prediction = model(x)
    assert (prediction - abs_divergence(k)).abs().max() < 0.25  # rounding recovers every site
    control, y_control, _ = fit_abs_divergence(kernel=1)  # pointwise: cannot see the neighbours
    assert control > 0.5 * float(y_control.var())


def test_the_documented_example_is_the_eq_example() -> None:
    """docs/architecture.md shows the eq example; it must stay the network tested here."""
    docs = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    section = docs.split("**Per-site outputs.**", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = OmegaConf.to_container(OmegaConf.create(block))
    expected = example("eq")
    assert shown == {key: expected[key] for key in ("family", "output", "layers")}
