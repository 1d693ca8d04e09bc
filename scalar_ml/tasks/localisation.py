r"""Task 4: flux localisation: which lattice sites are end points of open worms? A dense task.

The seed frames counting as "a simplified crowd-counting problem"; crowd counting is solved with
density maps. Here the network predicts, for every site :math:`x`, the probability that :math:`x` is
a worm end point, i.e. :math:`|\operatorname{div}_x k| = 1` (the inserted worms' end points never
coincide, so :math:`|\operatorname{div}_x k| \in \{0, 1\}` and exactly :math:`2M` sites are end
points for :math:`M` worms). Targets are fields ``(N, 1, Nt, Nx)`` (``(N, 1, *shape)`` in d
dimensions), recomputed from each
configuration and checked against the intent (``Σ_x |div_x k| = 2M``).

- **Loss**: binary cross entropy on the logits, per site, averaged over the sites (the networks end
  in a sigmoid: their ``forward`` returns the probability map :math:`p_x`).
- **The count** is the sum of the map: :math:`\hat M = \frac12 \sum_x p_x`.
- **Metrics**: per-site ``precision``, ``recall`` and ``f1`` of the end points at threshold 0.5
  (ratios of true/false positives summed over the cell's sites and configurations; ``f1`` is logged
  in training, as ``count_mse``), ``count_mse`` (:math:`(\hat M - M)^2`), ``acc`` (the rounded
  count is exact), ``pred_mean`` and ``pred_std`` of :math:`\hat M`.
- **Data** as task 3: 0 and 5 worms at its two training points on 8×8 (``conf/task/localisation.yaml``);
  an evaluation cell with ``M`` worms puts ``M`` into every configuration.
- **Symmetries**: the map is a scalar site field, so a point symmetry moves it with the sites
  (:meth:`LocalisationTask.transform_targets`).
- **Networks**: EQ is fully convolutional (translation *equivariant*: rolling the input rolls the
  map, on any lattice size), ST a strided encoder with upsampling, FL flatten + dense to
  ``Nt·Nx`` outputs (``conf/presets/localisation/``).

>>> import numpy as np
>>> from scalar_ml.physics import PhysicsParams
>>> from scalar_ml.tasks import ClosedSample
>>> closed = np.zeros((3, 4, 6, 6), dtype=np.int32)
>>> x, y = TASK.make_examples(ClosedSample(closed, PhysicsParams(4.01, 1.0, 1.0), {}),
...                           np.array([0, 1, 3]), np.random.default_rng(0))
>>> y.shape, y.sum(axis=(1, 2, 3)).tolist()
((3, 1, 6, 6), [0.0, 2.0, 6.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scalar_ml.tasks.base import Metric, Outputs
from scalar_ml.tasks.violations import ViolationTask, even_spread

__all__ = ["TASK", "LocalisationTask", "configuration_and_maps"]


def _sites(t: Any) -> Any:
    """Per-configuration sums over sites and channels: ``(N, C, Nt, Nx) -> (N,)``."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def _hits(o: Outputs) -> tuple[Any, Any]:
    """Predicted and true end points (0/1 fields at threshold 0.5)."""
    return (o.pred >= 0.5).to(o.pred.dtype), (o.target >= 0.5).to(o.pred.dtype)


def _true_positives(o: Outputs) -> Any:
    predicted, true = _hits(o)
    return _sites(predicted * true)


def _count(o: Outputs) -> Any:
    """The predicted number of worms: half the sum of the map."""
    return 0.5 * _sites(o.pred)


def _true_count(o: Outputs) -> Any:
    return 0.5 * _sites(o.target)


class LocalisationTask(ViolationTask):
    """Per-site detection of open-worm end points; the count is the sum of the map."""

    name = "localisation"
    order = 4
    title = "localisation of flux violations (worm end points per site)"
    targets = ("end_point",)
    per_site = True
    head_activation = "sigmoid"
    loss_on_logits = True
    metrics = (
        Metric(
            "f1",
            "ratio",
            lambda o: (2 * _true_positives(o), _sites(_hits(o)[0]) + _sites(_hits(o)[1])),
            training=True,
        ),
        Metric("precision", "ratio", lambda o: (_true_positives(o), _sites(_hits(o)[0]))),
        Metric("recall", "ratio", lambda o: (_true_positives(o), _sites(_hits(o)[1]))),
        Metric("count_mse", "mean", lambda o: (_count(o) - _true_count(o)) ** 2, training=True),
        Metric("acc", "fraction", lambda o: (_count(o).round() == _true_count(o)).to(o.pred.dtype)),
        Metric("pred_mean", "mean", _count),
        Metric("pred_std", "spread", _count),
    )

    def transforms_targets(self, element: Any) -> bool:
        return True

    def transform_targets(self, element: Any, targets: Any) -> Any:
        """End points move with their sites: ``|div' k'|(Ax) = |c·div k(x)| = |div k|(x)``, a scalar
        site field (``element.apply_sites``; charge conjugation only flips the sign of div k)."""
        return element.apply_sites(targets)

    def training_counts(self, rng: np.random.Generator, n: int, worms: Sequence[int]) -> np.ndarray:
        return even_spread(rng, n, worms)

    def cell_counts(self, rng: np.random.Generator, n: int, worms: int) -> np.ndarray:
        return np.full(n, worms, dtype=np.int64)

    def label(self, configs: np.ndarray, counts: np.ndarray) -> np.ndarray:
        from scalar_ml.physics.observables import flux_divergence

        dims = configs.ndim - 2
        ends = np.abs(flux_divergence(configs, dims=dims))
        total = ends.sum(axis=tuple(range(-dims, 0)))
        if ends.max(initial=0) > 1 or not np.array_equal(total, 2 * counts):
            raise RuntimeError(
                "localisation labels disagree with the inserted worms: this is a bug"
            )
        return ends.astype(np.float64)[:, None]

    def figures(self) -> tuple[Any, ...]:
        from scalar_ml.evaluation import plots

        return (plots.loss_vs_size, plots.loss_maps, count_from_map)

    def example_figures(
        self, inputs: np.ndarray, targets: np.ndarray, pred: np.ndarray, *, label: str, stem: str
    ) -> list[Any]:
        return configuration_and_maps(inputs, targets, pred, label=label, stem=stem)


def count_from_map(df: Any, task: str) -> list[Any]:
    """Count from the summed map vs the true count, per lattice size (one figure per group)."""
    from scalar_ml.evaluation import plots

    return plots.count_pred_vs_true(df, task, title="count from the summed map vs true count")


def configuration_and_maps(
    inputs: np.ndarray,
    targets: np.ndarray,
    pred: np.ndarray,
    *,
    label: str,
    stem: str,
    n_examples: int = 2,
) -> list[Any]:
    r"""Side by side for the first ``n_examples`` configurations: the flux :math:`|k_t| + |k_x|` per
    site (the configuration), the true end points and the predicted map with its count.

    On a d-dimensional lattice (d > 2) the panels show the (t, x) plane summed over the other space
    directions: the flux :math:`\sum_\nu |k_\nu|`, the number of end points and the summed map
    per (t, x) column (the counts are those of the whole lattice)."""
    import pandas as pd

    from scalar_ml.evaluation.plots import Figure, _plt

    plt = _plt()
    n = min(n_examples, len(inputs))
    if n == 0:
        return []
    dims = inputs.ndim - 2
    extra = tuple(range(2, dims))  # the space axes beyond x of one example's field (*shape)
    summed = "" if dims == 2 else f", summed over {'yz'[: dims - 2]}"
    fig, axes = plt.subplots(n, 3, figsize=(9.6, 3.1 * n), squeeze=False, layout="constrained")
    rows = []
    for i in range(n):
        flux = np.abs(inputs[i, :dims]).sum(axis=0)
        true, prob = targets[i, 0], pred[i, 0]
        if extra:
            flux, true, prob = (a.sum(axis=extra) for a in (flux, true, prob))
        k_label = "|k_t| + |k_x|" if dims == 2 else "Σ_ν |k_ν|"
        limits = (0, 1) if dims == 2 else (0, None)
        panels = (
            (flux, f"configuration: {k_label}{summed}", "Greys", None),
            (true, f"true end points ({round(float(true.sum()) / 2)} worms){summed}", "Reds",
             limits),
            (prob, f"predicted map (count {prob.sum() / 2:.2f}){summed}", "Reds", limits),
        )  # fmt: skip
        for ax, (field, title, cmap, limits) in zip(axes[i], panels, strict=True):
            vmin, vmax = limits if limits else (None, None)
            im = ax.imshow(field, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("x")
            ax.set_ylabel("t")
            fig.colorbar(im, ax=ax, fraction=0.046)
        nt, nx = true.shape
        for t in range(nt):
            for x in range(nx):
                rows.append(
                    {"example": i, "t": t, "x": x, "flux": float(flux[t, x]),
                     "end_point": float(true[t, x]), "predicted": float(prob[t, x])}
                )  # fmt: skip
    fig.suptitle(label, fontsize=9)
    return [Figure(stem, fig, pd.DataFrame(rows), "configuration, true end points, predicted map")]


TASK = LocalisationTask()
