"""Family eqr: exact invariance under translations and its point group, negative controls, rules.

* layers: lifting and group convolutions are equivariant (physical input representation,
  regular output representation) for several groups, kernels and lattice sizes, in float64;
* presets: parameter counts next to the EQ winners they mirror, exact symmetry and translation
  invariance on square and non-square lattices with odd and even extents;
* negative controls: EQ networks are not reflection invariant; an eqr network is not invariant
  under elements outside its group; a corrupted kernel gather is caught;
* spec rules with their exact messages.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from scalar_ml.models import (
    SpecError,
    build_model,
    build_preset,
    count_parameters,
    list_presets,
    preset_spec,
    symmetry_error,
    symmetry_errors,
    translation_error,
)
from scalar_ml.models.group import GroupConv2d, regular_action
from scalar_ml.physics.symmetry import ALL_ELEMENTS, FIXED_MU_GROUP, element, generate_group

EQR_PRESETS = [n for n in list_presets() if preset_spec(n)["family"] == "eqr"]
GROUPS = [["P", "TC"], ["T", "P", "C"], ["S", "T", "P", "C"], ["ST"], ["P"]]
SIZES = [(8, 8), (6, 5), (5, 7), (4, 4)]  # square and not, odd and even extents
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def configs(batch: int, nt: int, nx: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    k = torch.randint(-2, 3, (batch, 2, nt, nx))
    l = torch.randint(0, 4, (batch, 2, nt, nx))
    return torch.cat([k, l], dim=1).to(dtype)


# -- layers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("generators", GROUPS, ids=["+".join(g) for g in GROUPS])
@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 2), (1, 3)])
def test_lifting_and_group_convolutions_are_equivariant(
    generators: list[str], kernel: tuple[int, int]
) -> None:
    group = generate_group(generators)
    act = regular_action(group)
    lift = GroupConv2d(group, 4, 3, kernel, lifting=True).double()
    conv = GroupConv2d(group, 3, 2, kernel, lifting=False).double()
    with torch.no_grad():
        for nt, nx in [(6, 5), (5, 5), (4, 7)]:
            x = configs(2, nt, nx)
            feats = torch.randn(2, 3, len(group), nt, nx, dtype=torch.float64)
            scale = float(lift(x).abs().max())
            for g in group:
                err = (lift(g.apply(x)) - act(g, lift(x))).abs().max() / scale
                assert err <= 1e-13, (g.name, nt, nx, float(err))
                err = (conv(act(g, feats)) - act(g, conv(feats))).abs().max()
                assert err <= 1e-12 * float(conv(feats).abs().max()), (g.name, nt, nx)
            shift = (2, 3)
            rolled = lift(torch.roll(x, shift, dims=(-2, -1)))
            assert torch.allclose(rolled, torch.roll(lift(x), shift, dims=(-2, -1)), atol=1e-13)
            rolled = conv(torch.roll(feats, shift, dims=(-2, -1)))
            assert torch.allclose(rolled, torch.roll(conv(feats), shift, dims=(-2, -1)), atol=1e-12)


def test_layers_are_not_equivariant_under_elements_outside_their_group() -> None:
    group = FIXED_MU_GROUP
    lift = GroupConv2d(group, 4, 3, (2, 2), lifting=True).double()
    x = configs(2, 6, 5)
    with torch.no_grad():
        pooled = lift(x).sum(dim=2)  # group-pooled: invariant site fields
        for name in ("T", "C", "P"):
            g = element(name)
            diff = (lift(g.apply(x)).sum(dim=2) - g.apply_sites(pooled)).abs().max()
            if g in group:
                assert diff <= 1e-12
            else:
                assert diff > 1e-2, name


def test_a_wrong_link_transformation_is_caught() -> None:
    """Negative control: move the kernels as if links were sites (no shift, no sign): not invariant."""
    net = build_preset("counting/eqr_1", dtype=torch.float64)
    x = configs(4, 8, 8)
    assert symmetry_error(net, x) <= 1e-12
    lift = net.layers[0]
    assert isinstance(lift, GroupConv2d) and lift.lifting
    assert lift.window == (2, 2)  # the 1×1 kernel's reflected copies see the links one site back
    lift._sign.copy_(lift._sign.abs())  # corrupt: ignore that k changes sign on reflected links
    assert symmetry_error(net, x, ["P"]) > 1e-3
    assert symmetry_error(net, x, ["TC"]) > 1e-3


def test_kernels_are_moved_copies_of_one_weight() -> None:
    group = FIXED_MU_GROUP
    conv = GroupConv2d(group, 2, 3, (2, 2), lifting=False, bias=True)
    assert count_parameters(conv) == 3 * 2 * 4 * 2 * 2 + 3
    kernels = conv.kernels()
    assert kernels.shape == (3 * 4, 2 * 4, 2, 2)  # each moved copy fits a 2×2 window
    weights = conv.weight.detach().abs().flatten().sort().values
    for h in range(4):  # every copy holds each base weight exactly once (up to sign)
        copy = kernels[h::4].detach().abs().flatten()
        assert torch.equal(copy[copy > 0].sort().values, weights[weights > 0])
    lift = GroupConv2d(group, 4, 5, (1, 1), lifting=True, bias=False)
    assert count_parameters(lift) == 5 * 4
    with pytest.raises(ValueError, match="takes the 4 configuration channels, got 3"):
        GroupConv2d(group, 3, 5, (1, 1), lifting=True)


# -- presets ----------------------------------------------------------------------------------------------
def test_eqr_presets_and_their_parameter_counts(
    seed_parameter_counts: dict[str, int], eqr_parameter_counts: dict[str, tuple[int, str]]
) -> None:
    assert sorted(EQR_PRESETS) == sorted(eqr_parameter_counts)
    for name, (count, mirrored) in eqr_parameter_counts.items():
        model = build_preset(name)
        assert model.family == "eqr" and model.group is not None
        assert count_parameters(model) == count, name
        reference = seed_parameter_counts[mirrored]
        assert abs(count - reference) <= 0.02 * reference, (name, count, mirrored, reference)
    assert (
        count_parameters(build_preset("counting/eqr_1")) == seed_parameter_counts["counting/eq_1"]
    )


@pytest.mark.parametrize("name", EQR_PRESETS)
@pytest.mark.parametrize("size", SIZES, ids=[f"{t}x{x}" for t, x in SIZES])
def test_presets_are_exactly_invariant_under_their_group_and_translations(
    name: str, size: tuple[int, int]
) -> None:
    model = build_preset(name, dtype=torch.float64)
    x = configs(3, *size)
    errors = symmetry_errors(model, x)
    assert list(errors) == list(model.group.names)
    assert max(errors.values()) <= TOL[torch.float64], errors
    assert translation_error(model, x) <= TOL[torch.float64]
    # a reflection about another axis: an element times a translation
    for g in model.group.elements[1:]:
        moved = torch.roll(g.apply(x), (1, 2), dims=(-2, -1))
        with torch.no_grad():
            diff = (model(moved) - model(x)).abs().max() / model(x).abs().max()
        assert diff <= TOL[torch.float64], g.name


@pytest.mark.parametrize("name", EQR_PRESETS)
def test_presets_in_float32(name: str) -> None:
    model = build_preset(name)
    assert symmetry_error(model, configs(4, 8, 8, torch.float32)) <= TOL[torch.float32]


def test_full_group_network_on_non_square_lattices() -> None:
    """With S in the group an Nt×Nx input and its Nx×Nt image give the same output."""
    model = build_preset("counting/eqr_full", dtype=torch.float64)
    assert len(model.group) == 16
    x = configs(2, 6, 4)
    errors = symmetry_errors(model, x)
    assert set(errors) == {g.name for g in ALL_ELEMENTS}
    assert max(errors.values()) <= 1e-12


@pytest.mark.parametrize("name", ["counting/eqr_1", "counting/eqr_full"])
def test_counting_presets_are_bias_free_and_extensive(name: str) -> None:
    model = build_preset(name, dtype=torch.float64)
    assert all(getattr(module, "bias", None) is None for module in model.modules())
    x = configs(2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x.repeat(1, 1, 2, 3)), 6 * model(x), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("name", EQR_PRESETS)
def test_spec_rebuilds_the_same_network_and_gradients_flow(name: str) -> None:
    model = build_preset(name)
    assert model.spec["group"] == preset_spec(name)["group"]
    rebuilt = build_model(model.spec)
    rebuilt.load_state_dict(model.state_dict())
    x = configs(2, 8, 8, torch.float32)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    model(x).square().sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


# -- negative controls ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["counting/eq_1", "observables/eq", "detection/eq"])
def test_eq_networks_are_not_reflection_invariant(name: str) -> None:
    model = build_preset(name, dtype=torch.float64)
    x = configs(4, 8, 8)
    assert translation_error(model, x) <= 1e-12  # what they do promise
    errors = symmetry_errors(model, x)  # default: {1, P, TC, TPC}
    assert errors["1"] == 0.0
    for element_name in ("P", "TC", "TPC"):
        assert errors[element_name] > 1e-3, (element_name, errors)


def test_eqr_networks_are_not_invariant_outside_their_group() -> None:
    model = build_preset("counting/eqr_1", dtype=torch.float64)
    errors = symmetry_errors(model, configs(4, 6, 6), ALL_ELEMENTS)
    for g in ALL_ELEMENTS:
        if g in model.group:
            assert errors[g.name] <= 1e-12, g.name
        else:
            assert errors[g.name] > 1e-3, g.name


def test_symmetry_error_input_checks() -> None:
    model = build_preset("counting/eqr_2", dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must be a batch \(B, 4, Nt, Nx\)"):
        symmetry_error(model, torch.zeros(2, 3, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="no symmetry elements"):
        symmetry_error(model, configs(1, 4, 4), [])
    with pytest.raises(ValueError, match="unknown lattice symmetry 'Q'"):
        symmetry_error(model, configs(1, 4, 4), ["Q"])


# -- spec rules -----------------------------------------------------------------------------------------
LIFT = {"type": "lift_conv", "kernel": 2, "out": 4}
GCONV = {"type": "group_conv", "kernel": 2, "out": 4}
ACT = {"type": "activation", "name": "leaky_relu"}
GPOOL = {"type": "group_pool", "mode": "avg"}
GAP = {"type": "global_pool", "mode": "sum"}
LIN = {"type": "linear", "out": 1}


def eqr(*layers: dict[str, Any], group: Any = ("P", "TC")) -> dict[str, Any]:
    return {"family": "eqr", "group": list(group), "layers": list(layers)}


def refused(model_spec: Any, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        build_model(model_spec)


def test_a_valid_eqr_spec_builds() -> None:
    model = build_model(eqr(LIFT, ACT, GCONV, ACT, GPOOL, ACT, GAP, LIN, ACT, LIN))
    assert model.family == "eqr" and model.group.names == ("1", "P", "TC", "TPC")
    assert model.invariant_shifts(3, 2) == [(t, x) for t in range(3) for x in range(2)]
    assert model.spec["layers"][0] == {
        "type": "lift_conv",
        "kernel": [2, 2],
        "in": 4,
        "out": 4,
        "bias": True,
    }


@pytest.mark.parametrize(
    ("model_spec", "message"),
    [
        (
            eqr(ACT, LIFT, GPOOL, GAP, LIN),
            "layer 0 (activation): family 'eqr' starts with its lift_conv (the k channels change sign",
        ),
        (eqr(GCONV, GPOOL, GAP, LIN), "layer 0 (group_conv): family 'eqr' starts with a lift_conv"),
        (
            eqr(LIFT, LIFT, GPOOL, GAP, LIN),
            "layer 1 (lift_conv): a second lift_conv (the first is layer 0)",
        ),
        (
            eqr(LIFT, {"type": "conv", "kernel": 1, "out": 2}, GPOOL, GAP, LIN),
            "layer 1 (conv): conv is not allowed in family 'eqr' (a plain kernel or window is not moved",
        ),
        (
            eqr(LIFT, {"type": "avg_pool", "kernel": 2, "stride": 1}, GPOOL, GAP, LIN),
            "layer 1 (avg_pool): avg_pool is not allowed in family 'eqr'",
        ),
        (eqr(LIFT, GAP, LIN), "layer 1 (global_pool): global_pool before any group_pool"),
        (
            eqr(LIFT, GPOOL, GCONV, GAP, LIN),
            "layer 2 (group_conv): group convolution after the group_pool at layer 1",
        ),
        (
            eqr(LIFT, GPOOL, GPOOL, GAP, LIN),
            "layer 2 (group_pool): a second group_pool (the first is layer 1)",
        ),
        (eqr(LIFT, GPOOL, LIN, GAP), "layer 2 (linear): dense layer before the global_pool"),
        (
            eqr(LIFT, GPOOL, GAP, GAP, LIN),
            "layer 3 (global_pool): a second global_pool (the first is layer 2)",
        ),
        (
            eqr(LIFT, GCONV),
            "model spec: family 'eqr' needs one group_pool after the group convolutions; found none",
        ),
        (
            eqr(LIFT, GPOOL),
            "model spec: family 'eqr' needs one global_pool after the group_pool; found none",
        ),
        (eqr(), "model spec: family 'eqr' needs at least one layer"),
        (
            {"family": "eqr", "layers": [LIFT, GPOOL, GAP, LIN]},
            "model spec: family 'eqr' needs group: [generators], e.g. [P, TC]",
        ),
        (
            eqr(LIFT, GPOOL, GAP, LIN, group=()),
            "model spec: 'group' must be a non-empty list of generator names",
        ),
        (
            eqr(LIFT, GPOOL, GAP, LIN, group=["P", "R"]),
            "model spec: group ['P', 'R']: unknown lattice symmetry 'R'",
        ),
        (
            {
                "family": "eq",
                "group": ["P"],
                "layers": [{"type": "conv", "kernel": 1, "out": 1}, GAP],
            },
            "model spec: 'group' belongs to family 'eqr', not 'eq'",
        ),
        (
            {"family": "eq", "layers": [LIFT, GAP, LIN]},
            "layer 0 (lift_conv): group layers are only allowed in family 'eqr'",
        ),
        (
            {"family": "st", "layers": [{"type": "conv", "kernel": 1, "out": 1}, GPOOL, GAP]},
            "layer 1 (group_pool): group layers are only allowed in family 'eqr'",
        ),
        (
            eqr({**LIFT, "in": 3}, GPOOL, GAP, LIN),
            "layer 0 (lift_conv): in = 3 but the previous layers give 4 channels",
        ),
        (
            eqr(LIFT, {**GCONV, "in": 5}, GPOOL, GAP, LIN),
            "layer 1 (group_conv): in = 5 but the previous layers give 4",
        ),
        (
            eqr(LIFT, {"type": "group_pool", "mode": "median"}, GAP, LIN),
            "layer 1 (group_pool): 'mode' must be one of ['avg', 'max', 'sum']",
        ),
        (
            eqr({**LIFT, "stride": 2}, GPOOL, GAP, LIN),
            "layer 0 (lift_conv): unknown key(s) ['stride']",
        ),
    ],
)
def test_bad_eqr_specs_are_refused_with_the_reason(
    model_spec: dict[str, Any], message: str
) -> None:
    refused(model_spec, message)


def test_kernel_larger_than_the_lattice_is_refused() -> None:
    model = build_model(eqr({**LIFT, "kernel": 3}, GPOOL, GAP, LIN))
    with pytest.raises(
        SpecError, match=re.escape("layer 0 (lift_conv): kernel 3×3 is larger than the 2×5 lattice")
    ):
        model(configs(1, 2, 5, torch.float32))
