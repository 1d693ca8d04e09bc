"""The seed's 15 Optuna winners (SPEC §6, ``conf/presets/``) as points of the search space."""

from __future__ import annotations

from typing import Any


def _convs(kernels: list[int], channels: list[int]) -> dict[str, Any]:
    point: dict[str, Any] = {"n_conv": len(kernels)}
    for i, (k, c) in enumerate(zip(kernels, channels, strict=True)):
        point[f"kernel_{i}"] = k
        point[f"channels_{i}"] = c
    return point


#: preset name -> (family, arch point)
WINNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "counting/eq_1": (
        "eq",
        {
            **_convs([1, 2, 2, 1], [32, 8, 16, 8]),
            "global_pool": "sum",
            "n_linear": 1,
            "bias": False,
        },
    ),
    "counting/eq_2": (
        "eq",
        {**_convs([2, 2, 1, 1], [8, 8, 4, 8]), "global_pool": "sum", "n_linear": 1, "bias": False},
    ),
    # n_linear = 0: the last convolution has one channel (its channels_3 is ignored).
    "counting/eq_3": (
        "eq",
        {**_convs([1, 2, 2, 3], [4, 8, 4, 32]), "global_pool": "sum", "n_linear": 0, "bias": False},
    ),
    "counting/st_1": (
        "st",
        {
            **_convs([2, 1, 1, 1], [16, 32, 32, 8]),
            "pool_2": "avg",
            "global_pool": "sum",
            "n_linear": 2,
            "linear_0": 32,
            "bias": False,
        },
    ),
    "counting/st_2": (
        "st",
        {
            **_convs([2, 2], [4, 4]),
            "pool_0": "max",
            "global_pool": "sum",
            "n_linear": 1,
            "bias": False,
        },
    ),
    "counting/st_3": (
        "st",
        {
            **_convs([2, 3], [4, 16]),
            "pool_0": "avg",
            "global_pool": "sum",
            "n_linear": 2,
            "linear_0": 32,
            "bias": False,
        },
    ),
    "counting/fl_1": (
        "fl",
        {
            **_convs([2, 3], [4, 8]),
            "pool_0": "avg",
            "pool_1": "avg",
            "n_linear": 3,
            "linear_0": 4,
            "linear_1": 32,
            "bias": False,
        },
    ),
    "counting/fl_2": (
        "fl",
        {
            **_convs([2, 3], [8, 4]),
            "pool_0": "avg",
            "pool_1": "avg",
            "n_linear": 3,
            "linear_0": 4,
            "linear_1": 32,
            "bias": False,
        },
    ),
    "counting/fl_3": (
        "fl",
        {
            **_convs([2, 3], [32, 4]),
            "pool_0": "avg",
            "pool_1": "avg",
            "n_linear": 3,
            "linear_0": 32,
            "linear_1": 16,
            "bias": False,
        },
    ),
    "detection/eq": (
        "eq",
        {
            **_convs([2, 1], [32, 32]),
            "global_pool": "max",
            "n_linear": 2,
            "linear_0": 32,
            "bias": True,
            "bias_hidden": False,
        },
    ),
    "detection/st": (
        "st",
        {
            **_convs([2, 1, 1], [16, 16, 8]),
            "pool_0": "max",
            "global_pool": "max",
            "n_linear": 2,
            "linear_0": 32,
            "linear_activation": False,
            "bias": True,
            "bias_first_conv": False,
            "bias_hidden": False,
        },
    ),
    "detection/fl": (
        "fl",
        {
            **_convs([3, 2, 2], [8, 32, 32]),
            "pool_0": "max",
            "pool_1": "avg",
            "n_linear": 1,
            "bias": True,
            "bias_first_conv": False,
            "bias_out": False,
        },
    ),
    "observables/eq": (
        "eq",
        {
            **_convs([1, 1, 1, 2], [64, 48, 80, 80]),
            "global_pool": "avg",
            "n_linear": 1,
            "bias": True,
        },
    ),
    "observables/st": (
        "st",
        {
            **_convs([1, 1, 1, 2], [80, 80, 48, 80]),
            "pool_2": "avg",
            "global_pool": "avg",
            "n_linear": 1,
            "bias": True,
        },
    ),
    "observables/fl": (
        "fl",
        {
            **_convs([1, 2, 1, 2, 1], [64, 80, 48, 64, 24]),
            "pool_1": "avg",
            "pool_3": "avg",
            "n_linear": 2,
            "linear_0": 24,
            "last_conv_activation": False,
            "bias": True,
        },
    ),
}
