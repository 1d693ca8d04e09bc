"""LatticeModule: the task losses and metrics against direct computations, errors, divergence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scalar_ml.tasks import Outputs, get_task
from scalar_ml.training.module import DivergedError, LatticeModule, _SplitMetrics


def _outputs(pred: torch.Tensor, target: torch.Tensor) -> Outputs:
    return Outputs(pred, pred, target, ((pred - target) ** 2).reshape(len(pred), -1).mean(1))


def _batch(
    n: int, out: int, nt: int = 8, nx: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, 4, nt, nx), generator=g).float()
    return x, torch.rand(n, out, generator=g)


def test_detection_uses_bce_on_logits_and_forward_returns_probabilities() -> None:
    module = LatticeModule(task="detection", preset="detection/eq")
    x, _ = _batch(6, 1)
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0]])
    loss, outputs = module._loss_and_outputs(x, y)
    prob = outputs.pred
    probs = module(x)
    assert torch.all((probs > 0) & (probs < 1))
    torch.testing.assert_close(prob, probs)
    torch.testing.assert_close(loss, F.binary_cross_entropy(probs, y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("task", "preset", "lattice"),
    [("counting", "counting/eq_2", (8, 8)), ("observables", "observables/st", (60, 4))],
)
def test_regression_tasks_use_mse(task: str, preset: str, lattice: tuple[int, int]) -> None:
    module = LatticeModule(task=task, preset=preset)
    x, y = _batch(5, module.net.out_features, *lattice)
    loss, outputs = module._loss_and_outputs(x, y)
    pred = outputs.pred
    torch.testing.assert_close(loss, F.mse_loss(module(x), y))
    torch.testing.assert_close(pred, module(x))


def test_split_metrics_over_several_batches_equal_whole_split_values() -> None:
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g)
    metrics = _SplitMetrics(get_task("observables"))
    for sl in (slice(0, 3), slice(3, 10)):  # unequal batches: the mean must be weighted
        metrics.update(F.mse_loss(pred[sl], target[sl]), _outputs(pred[sl], target[sl]))
    values = metrics.compute("val")
    torch.testing.assert_close(values["val/loss"], F.mse_loss(pred, target))
    torch.testing.assert_close(values["val/mse_n"], F.mse_loss(pred[:, 0], target[:, 0]))
    torch.testing.assert_close(values["val/mse_phi2"], F.mse_loss(pred[:, 1], target[:, 1]))

    counts = torch.tensor([[0.0], [5.0], [5.0], [0.0]])
    predicted = torch.tensor([[0.4], [4.6], [5.6], [-0.2]])  # rounds to 0, 5, 6, 0: 3 of 4 exact
    acc = _SplitMetrics(get_task("counting"))
    acc.update(F.mse_loss(predicted[:1], counts[:1]), _outputs(predicted[:1], counts[:1]))
    acc.update(F.mse_loss(predicted[1:], counts[1:]), _outputs(predicted[1:], counts[1:]))
    assert acc.compute("test")["test/acc"].item() == pytest.approx(0.75)

    det = _SplitMetrics(get_task("detection"))
    probs, labels = (
        torch.tensor([[0.9], [0.2], [0.6], [0.4]]),
        torch.tensor([[1.0], [0.0], [0.0], [0.0]]),
    )
    det.update(torch.tensor(0.0), _outputs(probs, labels))
    assert det.compute("val")["val/acc"].item() == pytest.approx(0.75)


def test_non_finite_training_loss_raises_a_clear_error() -> None:
    module = LatticeModule(task="counting", preset="counting/eq_3")
    x, y = _batch(4, 1)
    y[0, 0] = float("nan")
    with pytest.raises(
        DivergedError, match=r"training loss became nan at epoch 0, step 0 .*learning rate"
    ):
        module.training_step((x, y), 0)


def test_network_choice_errors() -> None:
    with pytest.raises(
        ValueError, match="unknown task 'count'; tasks: observables, detection, counting"
    ):
        LatticeModule(task="count", preset="counting/eq_1")
    with pytest.raises(ValueError, match=r"either preset .* or layers"):
        LatticeModule(
            task="counting", preset="counting/eq_1", family="eq", layers=[{"type": "flatten"}]
        )
    with pytest.raises(ValueError, match=r"model\.family .* is required"):
        LatticeModule(task="counting", layers=[{"type": "global_pool", "mode": "sum"}])
    with pytest.raises(ValueError, match="no network given"):
        LatticeModule(task="counting")
    with pytest.raises(ValueError, match="needs 1 output per configuration \\(count\\)"):
        LatticeModule(task="counting", preset="observables/eq")


def test_spec_round_trip_rebuilds_the_same_network() -> None:
    module = LatticeModule(task="counting", preset="counting/st_1")
    clone = LatticeModule(task="counting", preset="counting/st_1", spec=module.hparams["spec"])
    clone.load_state_dict(module.state_dict())
    x, _ = _batch(3, 1)
    torch.testing.assert_close(clone(x), module(x))
    assert clone.hparams["n_parameters"] == module.hparams["n_parameters"] == 2336
