"""The search spaces: arch -> layer spec translation, the twelve hparams_search configs, the seed's
winners and the eqr presets as points.

Everything here is in-process and fast: Hydra composes the configs, nothing is trained.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from omegaconf import OmegaConf
from winners import WINNERS

from scalar_ml.models import build_model, build_preset, count_parameters, preset_spec
from scalar_ml.models.spec import parse_layer
from scalar_ml.paths import CONF_DIR
from scalar_ml.search.space import (
    ARCH_DEFAULTS,
    MAX_CONV,
    InvalidArchitectureError,
    arch_layers,
    arch_spec,
)
from scalar_ml.tasks import get_task

TASKS = ("observables", "detection", "counting")  # the seed's tasks (their spaces are in conf/)
FAMILIES = ("eq", "st", "fl", "eqr")
SPACES = [f"{task}_{family}" for task in TASKS for family in FAMILIES]
TRAINING_LATTICE = {"observables": (60, 4), "detection": (8, 8), "counting": (8, 8)}
ARCH = "model.arch."


def _compose(overrides: list[str]) -> Any:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.fixture(scope="module")
def spaces() -> dict[str, Any]:
    """Each search space composed: name -> (config, parsed sweeper params)."""
    parser = OverridesParser.create()
    out = {}
    for name in SPACES:
        cfg = _compose([f"hparams_search={name}"])
        params = {
            key: parser.parse_override(f"{key}={value}").value()
            for key, value in cfg.hydra.sweeper.params.items()
        }
        out[name] = (cfg, params)
    return out


def _normalised(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for index, layer in enumerate(layers):
        d = parse_layer(index, layer).to_dict()
        d.pop("in", None)
        result.append(d)
    return result


# --------------------------------------------------------------------------- the seed's winners
@pytest.mark.parametrize("preset", sorted(WINNERS))
def test_seed_winner_is_reproduced_exactly_by_its_arch_point(preset: str) -> None:
    family, arch = WINNERS[preset]
    task = preset.split("/")[0]
    spec = arch_spec(arch, family, task=task, lattice_size=TRAINING_LATTICE[task])
    assert _normalised(spec["layers"]) == _normalised(preset_spec(preset)["layers"])
    assert count_parameters(build_model(spec)) == count_parameters(build_preset(preset))


@pytest.mark.parametrize("preset", sorted(WINNERS))
def test_seed_winner_lies_in_its_search_space(preset: str, spaces: dict[str, Any]) -> None:
    """Every value of the winner is among the choices of the task × family space (or fixed there)."""
    family, arch = WINNERS[preset]
    task = preset.split("/")[0]
    cfg, params = spaces[f"{task}_{family}"]
    full = {**ARCH_DEFAULTS, **arch}
    n_conv, n_linear = full["n_conv"], full["n_linear"]
    used = {"n_conv", "n_linear", "activation", "last_conv_activation", "linear_activation", "bias"}
    used |= {"bias_first_conv", "bias_conv", "bias_hidden", "bias_out"}
    used |= {f"kernel_{i}" for i in range(n_conv)}
    used |= {f"channels_{i}" for i in range(n_conv - (1 if n_linear == 0 else 0))}
    used |= {f"linear_{j}" for j in range(n_linear - 1)}
    if family != "eq":
        used |= {f"pool_{i}" for i in range(n_conv)}
    if family != "fl":
        used.add("global_pool")

    def possible(key: str) -> list[Any]:
        sweep = params.get(ARCH + key)
        if sweep is not None:
            assert isinstance(sweep, ChoiceSweep), f"{key}: expected a choice, got {sweep}"
            return list(sweep.list)
        fixed = cfg.model.arch[key]
        if key.startswith("bias_") and fixed is None:  # the group follows `bias`
            return possible("bias")
        return [fixed]

    for key in sorted(used):
        value = full[key]
        if key.startswith("bias_") and value is None:
            value = full["bias"]
        assert value in possible(key), f"{preset}: {key}={value!r} not in {possible(key)}"


# --------------------------------------------------------------------------- the twelve configs
@pytest.mark.parametrize("name", SPACES)
def test_space_composes_into_a_searchable_optuna_sweep(name: str, spaces: dict[str, Any]) -> None:
    task, family = name.split("_")
    cfg, params = spaces[name]
    assert cfg.task.name == task and cfg.model.family == family
    assert cfg.model._target_ == "scalar_ml.search.module.searchable_module"
    assert (cfg.lattice.nt, cfg.lattice.nx) == TRAINING_LATTICE[task]
    assert list(cfg.model.lattice_size) == list(TRAINING_LATTICE[task])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert (
        sweeper.direction == "minimize" and sweeper.n_jobs == 1 and sweeper.max_failure_rate == 1.0
    )
    assert (
        sweeper.sampler._target_ == "optuna.samplers.TPESampler"
        and sweeper.sampler.seed is not None
    )
    assert sweeper.study_name == name
    assert sweeper.storage == f"sqlite:///{cfg.paths.log_dir}/optuna/{name}.db"
    assert cfg.optimized_metric == "val/loss" and cfg.seed == 0
    assert cfg.hydra.callbacks.search_report._target_ == "scalar_ml.search.callback.SearchCallback"
    # every searched key exists in the composed config (a typo would make each trial fail)
    for key in params:
        assert OmegaConf.select(cfg, key, throw_on_missing=False) is not None or key.startswith(
            ARCH + "bias_"
        ), key
    assert isinstance(params["model.optimizer.lr"], IntervalSweep)
    assert "log" in params["model.optimizer.lr"].tags
    assert isinstance(params["data.batch_size"], ChoiceSweep)
    searched = {key.removeprefix(ARCH) for key in params if key.startswith(ARCH)}
    assert {f"kernel_{i}" for i in range(MAX_CONV)} <= searched
    assert {f"channels_{i}" for i in range(MAX_CONV)} <= searched
    assert ("pool_0" in searched) == (family in ("st", "fl"))
    assert ("global_pool" in searched) == (family != "fl")
    assert ("group_pool" in searched) == (family == "eqr")
    if family == "eqr":
        assert list(cfg.model.group) == ["P", "TC"]


@pytest.mark.parametrize("name", SPACES)
def test_random_points_build_or_are_refused_cleanly(name: str, spaces: dict[str, Any]) -> None:
    """Any sampled point either builds (on the training lattice) or raises InvalidArchitectureError."""
    task, family = name.split("_")
    cfg, params = spaces[name]
    rng = random.Random(name)
    size = TRAINING_LATTICE[task]
    n_valid = 0
    for _ in range(25):
        arch = OmegaConf.to_container(cfg.model.arch, resolve=True)
        assert isinstance(arch, dict)
        for key, sweep in params.items():
            if key.startswith(ARCH):
                arch[key.removeprefix(ARCH)] = rng.choice(sweep.list)
        try:
            spec = arch_spec(arch, family, task=task, lattice_size=size)
        except InvalidArchitectureError as exc:
            assert "lattice" in str(exc) or "family" in str(exc), exc
            continue
        net = build_model(spec)
        assert net.out_features == get_task(task).n_outputs and net.family == family
        n_valid += 1
    assert n_valid > 0


# --------------------------------------------------------------------------- translation rules
def test_searched_networks_end_in_the_task_head() -> None:
    for task in TASKS:
        head = get_task(task).head()
        layers = arch_layers({"n_conv": 1}, "eq", task=task)
        assert layers[-1 if head.activation is None else -2]["out"] == head.outputs
        if head.activation is not None:
            assert layers[-1] == {"type": "activation", "name": head.activation}


def test_unused_slots_are_ignored() -> None:
    base = {"n_conv": 2, "kernel_0": 1, "kernel_1": 2, "channels_0": 4, "channels_1": 8}
    layers = arch_layers(base, "eq", task="counting")
    changed = arch_layers(
        {**base, "kernel_2": 3, "channels_4": 99, "linear_1": 7, "pool_3": "max"},
        "eq",
        task="counting",
    )
    assert layers == changed
    assert [layer["type"] for layer in layers].count("conv") == 2


def test_no_dense_layer_gives_the_last_convolution_one_channel_per_target() -> None:
    arch = {"n_conv": 2, "channels_0": 4, "channels_1": 32, "n_linear": 0, "global_pool": "sum"}
    layers = arch_layers(arch, "st", task="observables")
    convs = [layer for layer in layers if layer["type"] == "conv"]
    assert convs[-1]["out"] == 2 and not any(layer["type"] == "linear" for layer in layers)


def test_detection_ends_in_a_sigmoid_and_bias_groups_apply() -> None:
    arch = {"n_conv": 2, "n_linear": 2, "bias": True, "bias_first_conv": False, "bias_out": False}
    layers = arch_layers(arch, "eq", task="detection")
    assert layers[-1] == {"type": "activation", "name": "sigmoid"}
    biases = [layer["bias"] for layer in layers if layer["type"] in ("conv", "linear")]
    assert biases == [False, True, True, False]


@pytest.mark.parametrize(
    ("arch", "family", "message"),
    [
        ({"pool_0": "avg"}, "eq", "family 'eq' has no strided pooling"),
        ({"n_linear": 0}, "fl", "n_linear = 0 is not possible for family 'fl'"),
        ({"n_conv": 0}, "eq", "arch.n_conv must be 1 … 5"),
        ({"n_conv": 6}, "eq", "arch.n_conv must be 1 … 5"),
        ({"kernel_0": 0}, "eq", "arch.kernel_0 must be >= 1"),
        ({"global_pool": "median"}, "st", "arch.global_pool must be one of"),
        ({"pool_1": "min"}, "st", "arch.pool_1 must be one of"),
        ({"bias": "yes"}, "eq", "arch.bias must be true or false"),
        ({"kernels_0": 2}, "eq", "unknown arch key(s) ['kernels_0']"),
        ({"activation": "swish"}, "eq", "unknown activation 'swish'"),
    ],
)
def test_points_outside_the_space_are_refused(
    arch: dict[str, Any], family: str, message: str
) -> None:
    with pytest.raises(
        InvalidArchitectureError,
        match=re.escape(message),
    ):
        arch_spec(arch, family, task="counting", lattice_size=(8, 8))


def test_point_that_does_not_fit_the_lattice_names_the_layer() -> None:
    arch = {"n_conv": 3, "kernel_2": 3, "pool_0": "avg", "pool_1": "max"}
    assert arch_spec(arch, "fl", task="counting", lattice_size=(16, 16))["input_size"] == [16, 16]
    with pytest.raises(InvalidArchitectureError) as info:
        arch_spec(arch, "fl", task="counting", lattice_size=(8, 8))
    text = str(info.value)
    assert (
        "8×8 training lattice" in text
        and "layer 6 (conv): kernel 3×3 is larger than the 2×2" in text
    )


def test_searchable_model_config_builds_the_module() -> None:
    """model=searchable instantiates a LatticeModule whose spec is the point's layers."""
    from hydra.utils import instantiate

    from scalar_ml.training.module import LatticeModule

    family, arch = WINNERS["counting/st_3"]
    overrides = ["task=counting", "model=searchable", f"model.family={family}"]
    overrides += [
        f"model.arch.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in arch.items()
    ]
    cfg = _compose(overrides)
    module = instantiate(cfg.model)
    assert isinstance(module, LatticeModule)
    assert module.hparams["n_parameters"] == 1184
    assert _normalised(module.hparams["spec"]["layers"]) == _normalised(
        preset_spec("counting/st_3")["layers"]
    )


# --------------------------------------------------------------------------- eq: exact invariance
#: The choices of every kernel_<i> in the eq search spaces (checked against the configs below).
EQ_KERNELS = (1, 2, 3)
#: Bias options of the space: the global switch and the group overrides (null: follow `bias`).
BIAS_VARIANTS = (
    {"bias": False},
    {"bias": True},
    {"bias": True, "bias_first_conv": False, "bias_out": False},  # the seed's detection EQ
    {"bias": False, "bias_conv": True, "bias_hidden": True},
    {"bias": True, "bias_conv": False, "bias_hidden": False},
)
#: Lattices the points are checked on, every shift: the training lattices and an odd one.
EQ_LATTICES = ((8, 8), (60, 4), (5, 7))
#: Float64 invariance tolerance, and what a broken network must exceed (100 x: a saturated sigmoid
#: after sum pooling over 240 sites responds to a broken symmetry only at the 1e-8 level).
EQ_TOLERANCE, EQ_CONTROL = 1e-12, 1e-10


def _eq_points(n_conv: int) -> list[tuple[str, dict[str, Any], tuple[int, int]]]:
    """Every kernel pattern of ``n_conv`` convolutions, each with a cycled, seeded rest of the point.

    Over the 363 patterns of n_conv = 1 … 5 the cycles visit every (global pool, n_linear, bias
    variant) combination at least 6 times, every activation of the space, both values of the two
    activation switches, the three task heads and the three lattices.
    """
    from scalar_ml.models.layers import ACTIVATIONS
    from scalar_ml.search.space import GLOBAL_POOLS, MAX_LINEAR

    combos = [
        (pool, n_linear, bias)
        for pool in GLOBAL_POOLS
        for n_linear in range(MAX_LINEAR + 1)
        for bias in BIAS_VARIANTS
    ]
    activations = sorted(ACTIVATIONS)
    offset = sum(len(EQ_KERNELS) ** n for n in range(1, n_conv))  # patterns of smaller n_conv
    rng = random.Random(f"eq-points-{n_conv}")
    points = []
    for j, kernels in enumerate(itertools.product(EQ_KERNELS, repeat=n_conv)):
        i = offset + j
        pool, n_linear, bias = combos[i % len(combos)]
        arch: dict[str, Any] = {
            "n_conv": n_conv,
            "global_pool": pool,
            "n_linear": n_linear,
            "activation": activations[(7 * i) % len(activations)],
            "last_conv_activation": rng.random() < 0.5,
            "linear_activation": rng.random() < 0.5,
            **bias,
        }
        for k, kernel in enumerate(kernels):
            arch[f"kernel_{k}"] = kernel
            arch[f"channels_{k}"] = rng.choice([2, 3, 4])
        for k in range(MAX_LINEAR - 1):
            arch[f"linear_{k}"] = rng.choice([2, 3, 5])
        points.append((TASKS[i % len(TASKS)], arch, EQ_LATTICES[i % len(EQ_LATTICES)]))
    return points


def test_eq_kernel_choices_are_the_ones_covered(spaces: dict[str, Any]) -> None:
    for task in TASKS:
        _, params = spaces[f"{task}_eq"]
        for i in range(MAX_CONV):
            assert tuple(params[f"{ARCH}kernel_{i}"].list) == EQ_KERNELS, (task, i)


#: Shifts of the negative controls (a broken network fails at least one of them).
EQ_CONTROL_SHIFTS = ((1, 0), (0, 1), (1, 1), (2, 3))


def _zero_padded(t: torch.Tensor, pad_t: tuple[int, int], pad_x: tuple[int, int]) -> torch.Tensor:
    """The classic mistake in place of ``layers._circular_pad``: zeros instead of wrapping."""
    return F.pad(t, (pad_x[0], pad_x[1], pad_t[0], pad_t[1]), mode="constant")


def _control_errors(
    net: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, padded: bool
) -> tuple[float, float]:
    """Translation errors of the two broken variants: input rescaled by ``mask``; zero padding."""
    from scalar_ml.models import layers, translation_error

    masked = torch.nn.Sequential(_Rescale(mask), net)
    rescaled = translation_error(masked, x, shifts=EQ_CONTROL_SHIFTS)
    zero = math.inf
    if padded:
        original = layers._circular_pad
        layers._circular_pad = _zero_padded
        try:
            zero = translation_error(net, x, shifts=EQ_CONTROL_SHIFTS)
        finally:
            layers._circular_pad = original
    return rescaled, zero


def _responsive_eq_net(
    spec: dict[str, Any], nt: int, nx: int, seed: int, padded: bool
) -> tuple[torch.nn.Module, torch.Tensor]:
    """A float64 build of ``spec`` and an input on which both negative controls fail clearly.

    Random weights can make a network degenerate (all ReLUs dead: a constant output; a sigmoid
    saturated to exactly 1 after sum pooling), and on a constant output every invariance check
    passes vacuously. So weights are redrawn, and the input scaled down, until the broken variants
    (:func:`_control_errors`; zero padding only where a kernel is larger than 1x1) change the
    output by more than EQ_CONTROL.
    """
    generator = torch.Generator().manual_seed(seed)
    for attempt in range(30):
        torch.manual_seed(seed * 100 + attempt)
        net = build_model(spec, dtype=torch.float64)
        scale = (1.0, 0.3, 0.1)[attempt % 3]
        k = torch.randint(-2, 3, (2, 2, nt, nx), generator=generator)
        l = torch.randint(0, 4, (2, 2, nt, nx), generator=generator)
        x = scale * torch.cat([k, l], dim=1).double()
        mask = 1.0 + torch.rand(1, 1, nt, nx, dtype=torch.float64, generator=generator)
        if min(_control_errors(net, x, mask, padded)) > EQ_CONTROL:
            return net, x
    raise AssertionError(f"no responsive weights for {spec['description']} on {nt}x{nx}")


@pytest.mark.parametrize("n_conv", range(1, MAX_CONV + 1))
def test_every_eq_point_is_translation_invariant(n_conv: int) -> None:
    """float64, every shift of the lattice, with negative controls on every point.

    Controls (a check that cannot fail proves nothing, e.g. on a dead, constant output): the same
    network fed a position-dependent rescaling of its input, and, where a kernel is larger than
    1x1, the same network with zero instead of periodic padding, change their output under
    shifts by more than EQ_CONTROL (:func:`_responsive_eq_net`).
    """
    from scalar_ml.models import translation_error

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead on 2 shared cores
    try:
        for index, (task, arch, (nt, nx)) in enumerate(_eq_points(n_conv)):
            spec = arch_spec(arch, "eq", task=task, lattice_size=(nt, nx))
            padded = max(arch[f"kernel_{k}"] for k in range(n_conv)) > 1
            net, x = _responsive_eq_net(spec, nt, nx, seed=1000 * n_conv + index, padded=padded)
            where = f"{task} {spec['description']} on {nt}x{nx}: {arch}"
            assert translation_error(net, x) <= EQ_TOLERANCE, where
    finally:
        torch.set_num_threads(threads)


class _Rescale(torch.nn.Module):
    """Multiply the input by a fixed site-dependent factor: breaks translation symmetry."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


# --------------------------------------------------------------------------- family eqr
#: The eqr presets (conf/presets/<task>/eqr*.yaml) as points of the space, with their group.
EQR_POINTS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "counting/eqr_1": (["P", "TC"], {
        "n_conv": 4, "kernel_0": 1, "kernel_1": 2, "kernel_2": 2, "kernel_3": 1,
        "channels_0": 17, "channels_1": 4, "channels_2": 8, "channels_3": 4,
        "group_pool": "sum", "global_pool": "sum", "n_linear": 1, "bias": False}),
    "counting/eqr_2": (["P", "TC"], {
        "n_conv": 4, "kernel_0": 2, "kernel_1": 2, "kernel_2": 1, "kernel_3": 1,
        "channels_0": 4, "channels_1": 5, "channels_2": 2, "channels_3": 4,
        "group_pool": "sum", "global_pool": "sum", "n_linear": 1, "bias": False}),
    "counting/eqr_full": (["S", "T", "P", "C"], {
        "n_conv": 4, "kernel_0": 1, "kernel_1": 2, "kernel_2": 2, "kernel_3": 1,
        "channels_0": 9, "channels_1": 2, "channels_2": 4, "channels_3": 2,
        "group_pool": "sum", "global_pool": "sum", "n_linear": 1, "bias": False}),
    "detection/eqr": (["P", "TC"], {
        "n_conv": 2, "kernel_0": 2, "kernel_1": 1, "channels_0": 20, "channels_1": 20,
        "group_pool": "max", "global_pool": "max", "n_linear": 2, "linear_0": 32,
        "bias": True, "bias_hidden": False}),
    "observables/eqr": (["P", "TC"], {
        "n_conv": 4, "kernel_0": 1, "kernel_1": 1, "kernel_2": 1, "kernel_3": 2,
        "channels_0": 33, "channels_1": 24, "channels_2": 40, "channels_3": 40,
        "group_pool": "avg", "global_pool": "avg", "n_linear": 1, "bias": True}),
}  # fmt: skip


def test_every_eqr_preset_is_covered() -> None:
    from scalar_ml.models import list_presets

    eqr = {p for p in list_presets() if preset_spec(p)["family"] == "eqr"}
    assert eqr == set(EQR_POINTS)


@pytest.mark.parametrize("preset", sorted(EQR_POINTS))
def test_eqr_preset_is_reproduced_exactly_by_its_arch_point(preset: str) -> None:
    group, arch = EQR_POINTS[preset]
    task = preset.split("/")[0]
    spec = arch_spec(arch, "eqr", task=task, lattice_size=TRAINING_LATTICE[task], group=group)
    assert spec["group"] == group == list(preset_spec(preset)["group"])
    assert _normalised(spec["layers"]) == _normalised(preset_spec(preset)["layers"])
    assert count_parameters(build_model(spec)) == count_parameters(build_preset(preset))


def test_eqr_points_are_invariant_under_their_group() -> None:
    import torch

    from scalar_ml.models.equivariance import symmetry_error, translation_error

    arch = {"n_conv": 3, "kernel_0": 2, "kernel_1": 3, "kernel_2": 1, "group_pool": "max"}
    net = build_model(
        arch_spec(arch, "eqr", task="observables", lattice_size=(60, 4)), dtype=torch.float64
    )
    x = torch.randint(-2, 3, (3, 4, 10, 6)).double()
    assert symmetry_error(net, x) < 1e-12 and translation_error(net, x) < 1e-12
    assert symmetry_error(net, x, ["T"]) > 1e-6  # not in <P, TC>: the check has power


@pytest.mark.parametrize(
    ("arch", "kwargs", "message"),
    [
        ({"pool_0": "avg"}, {}, "family 'eqr' has no strided pooling"),
        ({"group_pool": "median"}, {}, "arch.group_pool must be one of"),
        ({}, {"group": ["X"]}, "unknown lattice symmetry 'X'"),
        ({}, {"group": "P"}, "'group' must be a non-empty list"),
        ({}, {"head": {"outputs": 1, "per_site": True}}, "family 'eqr' has no site-output"),
        ({"kernel_0": 9}, {}, "does not fit the 8×8 training lattice"),
    ],
)
def test_eqr_points_outside_the_space_are_refused(
    arch: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArchitectureError, match=re.escape(message)):
        arch_spec(arch, "eqr", task="counting", lattice_size=(8, 8), **kwargs)


def test_searchable_model_config_builds_an_eqr_module() -> None:
    from hydra.utils import instantiate

    group, arch = EQR_POINTS["counting/eqr_full"]
    overrides = ["task=counting", "model=searchable", "model.family=eqr"]
    overrides += [f"model.group=[{','.join(group)}]"]
    overrides += [
        f"model.arch.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in arch.items()
    ]
    module = instantiate(_compose(overrides).model)
    assert module.net.family == "eqr" and module.hparams["n_parameters"] == 1830
    assert module.hparams["spec"]["group"] == group
    plain = instantiate(_compose(["task=counting", "model=searchable"]).model)
    assert plain.net.family == "eq" and "group" not in plain.hparams["spec"]  # eq ignores it
