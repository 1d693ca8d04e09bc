"""The search space with a task-independent Head: per-site networks of every family from the same keys."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from winners import WINNERS

from scalar_ml.models import Head, build_model, count_parameters
from scalar_ml.paths import CONF_DIR
from scalar_ml.search.space import (
    InvalidArchitectureError,
    arch_layers,
    arch_spec,
    describe_layers,
    resolve_head,
)
from scalar_ml.tasks import get_task

TRAINING_LATTICE = {"observables": (60, 4), "detection": (8, 8), "counting": (8, 8)}
PER_SITE = Head(1, "sigmoid", per_site=True)
POINT = {
    "n_conv": 3,
    "kernel_0": 3,
    "channels_0": 8,
    "kernel_1": 2,
    "channels_1": 6,
    "kernel_2": 1,
    "channels_2": 4,
    "n_linear": 2,
    "linear_0": 5,
    "bias": False,
    "bias_out": True,
}


def types(layers: list[dict[str, Any]]) -> list[str]:
    return [layer["type"] for layer in layers]


@pytest.mark.parametrize("task", ["observables", "detection", "counting"])
@pytest.mark.parametrize("family", ["eq", "st", "fl"])
def test_a_configuration_head_equals_the_task(task: str, family: str) -> None:
    arch = {**POINT, "pool_0": "none" if family == "eq" else "avg"}
    head = get_task(task).head()
    outputs, activation = head.outputs, head.activation
    by_task = arch_spec(arch, family, task=task, lattice_size=(8, 8))
    by_head = arch_spec(arch, family, head=Head(outputs, activation), lattice_size=(8, 8))
    assert by_head == {key: value for key, value in by_task.items() if key != "task"}
    assert "output" not in by_task  # configuration points are the specs they always were


@pytest.mark.parametrize("preset", sorted(WINNERS))
def test_every_winner_point_also_builds_per_site(preset: str) -> None:
    family, arch = WINNERS[preset]
    size = TRAINING_LATTICE[preset.split("/")[0]]
    spec = arch_spec(arch, family, head=PER_SITE, lattice_size=size)
    assert spec["output"] == "site" and "task" not in spec
    model = build_model(spec)
    assert model.output == "site" and model.out_features == 1 and model.ends_with_sigmoid
    out = model(torch.zeros(2, 4, *size))
    assert out.shape == (2, 1, *size)
    kinds = types(spec["layers"])
    assert "global_pool" not in kinds
    if family == "fl":
        assert kinds[-3:] == ["linear", "unflatten", "activation"]
        assert spec["layers"][-3]["out"] == size[0] * size[1]
    else:
        assert "linear" not in kinds
        n_pools = sum(kind.endswith("_pool") for kind in kinds)
        upsamples = [layer for layer in spec["layers"] if layer["type"] == "upsample"]
        assert [u["factor"] for u in upsamples] == ([2**n_pools] if n_pools else [])


def test_eq_site_dense_layers_become_pointwise_convolutions() -> None:
    layers = arch_layers(POINT, "eq", head=Head(3, None, per_site=True))
    convs = [layer for layer in layers if layer["type"] == "conv"]
    assert [(c["kernel"], c["out"], c["bias"]) for c in convs] == [
        (3, 8, False),
        (2, 6, False),
        (1, 4, False),
        (1, 5, False),  # linear_0, bias_hidden follows bias
        (1, 3, True),  # the output layer, bias_out
    ]
    model = build_model({"family": "eq", "output": "site", "layers": layers})
    pooled = build_model({"family": "eq", "layers": arch_layers(POINT, "eq", head=Head(3))})
    assert count_parameters(model) == count_parameters(pooled)  # same weights, applied per site
    no_dense = arch_layers({**POINT, "n_linear": 0}, "eq", head=Head(2, None, per_site=True))
    assert types(no_dense)[-2:] == ["conv", "activation"] and no_dense[-2]["out"] == 2


def test_st_site_upsamples_after_the_pointwise_layers() -> None:
    arch = {**POINT, "pool_0": "max", "pool_2": "avg"}
    layers = arch_layers(arch, "st", head=PER_SITE)
    assert types(layers)[-2:] == ["upsample", "activation"]
    assert layers[-2] == {"type": "upsample", "factor": 4}
    assert describe_layers(layers) == (
        "Conv3x3(4,8)* MaxPool Conv2x2(8,6)* Conv1x1(6,4)* AvgPool Conv1x1(4,5)* Conv1x1(5,1) "
        "Upsample4x4 Sigmoid"  # bias only on the output layer (bias_out), starred as on the slides
    )
    model = build_model(arch_spec(arch, "st", head=PER_SITE, lattice_size=(8, 8)))
    assert model.symmetry_shifts(8, 8) == [(0, 0), (0, 4), (4, 0), (4, 4)]


def test_fl_site_needs_the_lattice_and_unflattens() -> None:
    arch = {**POINT, "pool_0": "avg"}
    with pytest.raises(InvalidArchitectureError, match=re.escape("needs lattice_size = (nt, nx)")):
        arch_layers(arch, "fl", head=PER_SITE)
    spec = arch_spec(arch, "fl", head=Head(2, None, per_site=True), lattice_size=(6, 4))
    assert spec["input_size"] == [6, 4]
    assert spec["layers"][-1] == {"type": "unflatten", "channels": 2}
    assert spec["description"].endswith("Flatten Linear(24,5)* Linear(5,48) Unflatten(2,6,4)")
    assert build_model(spec)(torch.zeros(1, 4, 6, 4)).shape == (1, 2, 6, 4)


def test_st_site_point_on_a_lattice_its_strides_do_not_divide_is_refused() -> None:
    arch = {**POINT, "pool_0": "avg", "pool_1": "avg"}
    assert arch_spec(arch, "st", head=PER_SITE, lattice_size=(60, 8))["output"] == "site"
    with pytest.raises(InvalidArchitectureError) as info:
        arch_spec(arch, "st", head=PER_SITE, lattice_size=(60, 4 + 2))
    assert "does not fit the 60×6 training lattice" in str(info.value)
    assert "layer 5 (avg_pool): stride 2 does not divide the space extent 3" in str(info.value)


def test_head_resolution_and_errors() -> None:
    assert resolve_head("counting") == Head(1)
    assert resolve_head("counting", {"outputs": 2, "per_site": True}) == Head(2, None, True)
    spec = arch_spec(POINT, "eq", task="counting", head=PER_SITE, lattice_size=(8, 8))
    assert spec["task"] == "counting" and spec["output"] == "site"  # head wins, task recorded
    with pytest.raises(InvalidArchitectureError, match="give task or head"):
        arch_layers(POINT, "eq")
    with pytest.raises(InvalidArchitectureError, match="unknown task 'sorting'"):
        arch_layers(POINT, "eq", task="sorting")
    with pytest.raises(InvalidArchitectureError, match=re.escape("head: unknown key(s) ['site']")):
        arch_layers(POINT, "eq", head={"outputs": 1, "site": True})
    with pytest.raises(InvalidArchitectureError, match="head: unknown activation 'softmax'"):
        arch_layers(POINT, "eq", head={"outputs": 1, "activation": "softmax"})


def test_searchable_config_takes_the_task_head_and_refuses_another() -> None:
    """model=searchable builds what the task needs (a site network for task=localisation); a
    model.head that contradicts the task is refused before any data are loaded."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    site = ["model=searchable", "model.family=st", "model.arch.pool_0=avg"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["task=localisation", *site])
        clash = compose(
            "train",
            overrides=[
                "task=counting",
                *site,
                "model.head={outputs: 1, activation: sigmoid, per_site: true}",
            ],
        )
        default = compose("train", overrides=["task=counting", "model=searchable"])
    module = instantiate(cfg.model)
    assert module.net.output == "site" and module.net.ends_with_sigmoid
    assert module.hparams["spec"]["output"] == "site"
    with pytest.raises(InstantiationException, match="per site but task 'counting' needs"):
        instantiate(clash.model)
    assert default.model.head is None
    assert instantiate(default.model).net.output == "configuration"
