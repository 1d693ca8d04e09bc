"""Site outputs: f(T x) = T f(x) exactly for eq (any lattice), for st on stride multiples, never for fl.

Every promise has a negative control showing the check would catch a broken network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from scalar_ml.models import build_model, lattice_shifts, translation_error, translation_errors
from scalar_ml.models.layers import NearestUpsample2d

SITE_SPECS = Path(__file__).parent / "site_specs"
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}
TANH = {"type": "activation", "name": "tanh"}


def example(family: str, dtype: torch.dtype = torch.float64) -> nn.Module:
    spec = OmegaConf.to_container(OmegaConf.load(SITE_SPECS / f"{family}.yaml"))
    assert isinstance(spec, dict)
    return build_model(spec, dtype=dtype)


def configs(batch: int, nt: int, nx: int, dtype: torch.dtype) -> torch.Tensor:
    k = torch.randint(-2, 3, (batch, 2, nt, nx))
    l = torch.randint(0, 4, (batch, 2, nt, nx))
    return torch.cat([k, l], dim=1).to(dtype)


def conv(kernel: Any, out: int) -> dict[str, Any]:
    return {"type": "conv", "kernel": kernel, "out": out}


#: eq site networks exercising every padding case (odd, even, rectangular kernels, stride-1 pooling).
EQ_SITE_NETS = {
    "example": None,
    "even-kernels": [conv(2, 6), TANH, conv(4, 6), TANH, conv([2, 3], 2)],
    "pooling": [conv(3, 6), TANH, {"type": "max_pool", "kernel": [3, 2], "stride": 1}, conv(1, 3)],
}


def eq_site(name: str, dtype: torch.dtype) -> nn.Module:
    layers = EQ_SITE_NETS[name]
    if layers is None:
        return example("eq", dtype)
    return build_model({"family": "eq", "output": "site", "layers": layers}, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "size", [(8, 8), (5, 7), (12, 5), (4, 9), (60, 4)], ids=lambda s: f"{s[0]}x{s[1]}"
)
@pytest.mark.parametrize("name", list(EQ_SITE_NETS))
def test_eq_site_networks_are_equivariant_under_every_shift(
    name: str, size: tuple[int, int], dtype: torch.dtype
) -> None:
    model = eq_site(name, dtype)
    x = configs(2, *size, dtype)
    assert model(x).shape[-2:] == size
    errors = translation_errors(model, x, shifts=model.symmetry_shifts(*size))
    assert len(errors) == size[0] * size[1]
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE[dtype], f"shift {worst}: {errors[worst]:.3g}"


def test_eq_site_outputs_are_not_invariant() -> None:
    """The check compares T f(x), not f(x): an equivariant field does move with the input."""
    model = example("eq")
    x = configs(2, 6, 6, torch.float64)
    shifted = model(torch.roll(x, (1, 2), dims=(-2, -1)))
    assert (shifted - model(x)).abs().max() > 1e-3
    torch.testing.assert_close(
        shifted, torch.roll(model(x), (1, 2), dims=(-2, -1)), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("size", [(8, 8), (6, 10), (16, 6)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_st_site_network_is_equivariant_under_stride_multiples_only(size: tuple[int, int]) -> None:
    model = example("st")
    x = configs(3, *size, torch.float64)
    even = model.symmetry_shifts(*size)
    assert even == lattice_shifts(*size, period=(2, 2))
    assert translation_error(model, x, shifts=even) <= 1e-12
    for shift in [(1, 0), (0, 1), (1, 1), (3, 2)]:  # negative control: odd shifts move the blocks
        assert translation_error(model, x, shifts=[shift]) > 1e-3, shift


def test_st_site_period_of_a_deeper_encoder() -> None:
    """Two stride-2 poolings and one ×4 upsampling: period 4; shifts by 2 are not a symmetry."""
    model = build_model(
        {
            "family": "st",
            "output": "site",
            "layers": [
                conv(2, 6),
                TANH,
                {"type": "avg_pool", "kernel": 2, "stride": 2},
                conv(2, 6),
                TANH,
                {"type": "max_pool", "kernel": 2, "stride": 2},
                conv(1, 2),
                {"type": "upsample", "factor": 4},
                conv(3, 2),
            ],
        },
        dtype=torch.float64,
    )
    x = configs(2, 8, 16, torch.float64)
    assert model.trace((8, 16)).period == (4, 4)
    assert translation_error(model, x, shifts=model.symmetry_shifts(8, 16)) <= 1e-12
    assert translation_error(model, x, shifts=[(2, 0)]) > 1e-3
    assert translation_error(model, x, shifts=[(0, 2)]) > 1e-3


def test_fl_site_network_promises_nothing() -> None:
    model = example("fl")
    x = configs(2, 8, 8, torch.float64)
    assert model.symmetry_shifts(8, 8) == [(0, 0)]
    assert translation_error(model, x, shifts=[(0, 0)]) == 0.0
    assert translation_error(model, x) > 1e-3  # dense layers remember where things are


# --- negative controls: the check catches networks that break the symmetry ----------------------


class PositionalBias(nn.Module):
    """Adds a fixed, site-dependent field: a per-site output that is not equivariant."""

    def __init__(self, nt: int, nx: int) -> None:
        super().__init__()
        self.register_buffer("field", torch.randn(1, 1, nt, nx, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.field


def test_a_position_dependent_layer_fails_the_equivariance_check() -> None:
    model = example("eq")
    broken = nn.Sequential(model, PositionalBias(6, 6))
    x = configs(2, 6, 6, torch.float64)
    assert translation_error(model, x) <= 1e-12
    assert translation_error(broken, x) > 1e-2


class ZeroPaddedInterpolation(nn.Module):
    """Bilinear upsampling without periodic wrap: what a careless decoder would use."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(
            x, scale_factor=self.factor, mode="bilinear", align_corners=True
        )


def test_a_non_periodic_upsampling_fails_the_stride_multiple_check() -> None:
    model = example("st")
    x = configs(2, 8, 8, torch.float64)
    shifts = model.symmetry_shifts(8, 8)
    assert translation_error(model, x, shifts=shifts) <= 1e-12
    index = next(i for i, m in enumerate(model.layers) if isinstance(m, NearestUpsample2d))
    model.layers[index] = ZeroPaddedInterpolation(2)
    assert translation_error(model, x, shifts=shifts) > 1e-3


def test_outputs_on_another_lattice_are_refused() -> None:
    coarse = build_model(
        {
            "family": "st",
            "output": "site",
            "layers": [
                conv(2, 2),
                {"type": "avg_pool", "kernel": 2, "stride": 2},
                {"type": "upsample", "factor": 2},
            ],
        },
        dtype=torch.float64,
    )
    encoder = nn.Sequential(*list(coarse.layers)[:2])  # stops on the 4×4 lattice
    with pytest.raises(
        ValueError, match="is a field on a 4×4 lattice but the input lattice is 8×8"
    ):
        translation_error(encoder, torch.randn(2, 4, 8, 8, dtype=torch.float64))
