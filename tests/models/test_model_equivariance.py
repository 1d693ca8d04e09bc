"""The translation-symmetry contract: eq exact, st under stride multiples only, and the check can fail."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from scalar_ml.models import (
    build_model,
    build_preset,
    lattice_shifts,
    list_presets,
    preset_spec,
    translation_error,
    translation_errors,
)
from scalar_ml.models.layers import LatticePool2d, PeriodicConv2d

#: Configuration-output presets (site-output ones: tests/training/test_localisation.py).
_CONFIG_PRESETS = [n for n in list_presets() if preset_spec(n).get("output") != "site"]
EQ_PRESETS = [n for n in _CONFIG_PRESETS if preset_spec(n)["family"] == "eq"]
ST_PRESETS = [n for n in _CONFIG_PRESETS if preset_spec(n)["family"] == "st"]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def configs(batch: int, nt: int, nx: int, dtype: torch.dtype) -> torch.Tensor:
    k = torch.randint(-2, 3, (batch, 2, nt, nx))
    l = torch.randint(0, 4, (batch, 2, nt, nx))
    return torch.cat([k, l], dim=1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("size", [(8, 8), (60, 4), (100, 5)], ids=["8x8", "60x4", "100x5"])
@pytest.mark.parametrize("name", EQ_PRESETS)
def test_eq_presets_are_invariant_under_every_shift(
    name: str, size: tuple[int, int], dtype: torch.dtype
) -> None:
    model = build_preset(name, dtype=dtype)
    errors = translation_errors(model, configs(2, *size, dtype))
    assert len(errors) == size[0] * size[1]  # every (dt, dx), the default on these lattices
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE[dtype], f"shift {worst}: {errors[worst]:.3g}"


@pytest.mark.parametrize("size", [(8, 8), (16, 16), (12, 6)], ids=["8x8", "16x16", "12x6"])
@pytest.mark.parametrize("name", ST_PRESETS)
def test_st_presets_invariant_under_even_shifts_only(name: str, size: tuple[int, int]) -> None:
    model = build_preset(name, dtype=torch.float64)
    x = configs(3, *size, torch.float64)
    even = model.invariant_shifts(*size)
    assert even == lattice_shifts(*size, period=(2, 2))  # one stride-2 pooling in every st winner
    assert translation_error(model, x, shifts=even) <= 1e-12
    odd = [(1, 0), (0, 1), (1, 1), (3, 2)]
    for shift in odd:  # generic weights and inputs: an odd shift changes the output
        assert translation_error(model, x, shifts=[shift]) > 1e-4, shift


def test_st_on_100x5_keeps_time_period_only_and_warns_once() -> None:
    model = build_preset("observables/st", dtype=torch.float64)
    x = configs(2, 100, 5, torch.float64)
    with pytest.warns(UserWarning, match="floor pooling on a 100×5 lattice"):
        shifts = model.invariant_shifts(100, 5)
        model(x)
    assert shifts == [(dt, 0) for dt in range(0, 100, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning from the same instance would raise
        assert translation_error(model, x, shifts=shifts) <= 1e-12
        assert translation_error(model, x, shifts=[(0, 2)]) > 1e-6  # the seed's 100×5 "kink"


def test_a_strided_model_fails_the_default_check() -> None:
    strided = build_model(
        {
            "family": "st",
            "layers": [
                {"type": "conv", "kernel": 2, "out": 6},
                {"type": "activation", "name": "tanh"},
                {"type": "avg_pool", "kernel": 2, "stride": 2},
                {"type": "conv", "kernel": 3, "out": 6},
                {"type": "activation", "name": "tanh"},
                {"type": "global_pool", "mode": "max"},
                {"type": "linear", "out": 1},
            ],
        },
        dtype=torch.float64,
    )
    x = configs(2, 8, 8, torch.float64)
    assert translation_error(strided, x) > 1e-3


@pytest.mark.parametrize("name", [n for n in _CONFIG_PRESETS if preset_spec(n)["family"] == "fl"])
def test_fl_presets_are_reported_not_promised(name: str) -> None:
    model = build_preset(name, dtype=torch.float64)
    x = configs(2, *model.input_size, torch.float64)
    assert model.invariant_shifts(*model.input_size) == [(0, 0)]
    assert translation_error(model, x, shifts=[(0, 0)]) == 0.0
    assert translation_error(model, x) > 1e-4  # flattening remembers where things are


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (4, 4), (2, 3), (3, 2), (5, 1)])
@pytest.mark.parametrize("size", [(5, 5), (6, 4), (5, 7)])
def test_periodic_conv_is_equivariant_for_any_kernel(
    kernel: tuple[int, int], size: tuple[int, int]
) -> None:
    conv = PeriodicConv2d(4, 3, kernel).double()
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    assert conv(x).shape == (2, 3, *size)
    assert translation_error(conv, x) <= 1e-12  # lattice-valued output: checks f(Tx) = T f(x)


def test_zero_padded_conv_fails_the_equivariance_check() -> None:
    conv = nn.Conv2d(4, 3, 3, padding=1).double()  # the non-periodic mistake the layer avoids
    assert translation_error(conv, torch.randn(2, 4, 6, 6, dtype=torch.float64)) > 1e-3


def test_stride_one_pooling_is_equivariant() -> None:
    for mode in ("avg", "max"):
        pool = LatticePool2d(mode, (3, 2), (1, 1))
        x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
        assert pool(x).shape == x.shape
        assert translation_error(pool, x) <= 1e-12


def test_default_shifts_on_a_large_lattice_are_a_documented_subset() -> None:
    shifts = lattice_shifts(64, 64)
    assert set(shifts) == (
        {(t, 0) for t in range(64)} | {(0, x) for x in range(64)} | {(d, d) for d in range(64)}
    )
    assert len(lattice_shifts(32, 32)) == 32 * 32  # 1024 sites: still every shift
    with pytest.raises(ValueError, match="period must be positive"):
        lattice_shifts(8, 8, period=(0, 1))


def test_translation_error_restores_training_mode_and_is_relative() -> None:
    model = build_preset(
        "counting/st_2", dtype=torch.float64
    )  # bias-free, LeakyReLU, 3 weight layers
    model.train()
    x = configs(2, 8, 8, torch.float64)
    shift = [(1, 0)]
    error = translation_error(model, x, shifts=shift)
    assert model.training
    assert error > 1e-4
    scaled = build_preset("counting/st_2", dtype=torch.float64)
    scaled.load_state_dict({k: 10 * v for k, v in model.state_dict().items()})
    # positively homogeneous: outputs and their changes scale by 10**3, the relative error does not
    torch.testing.assert_close(scaled(x).detach(), 1000 * model(x).detach())
    assert translation_error(scaled, x, shifts=shift) == pytest.approx(error, rel=1e-9)
