"""Evaluation: trained checkpoints over grids of lattice sizes × physics points × worm counts.

- :mod:`~scalar_ml.evaluation.grid`: grid config nodes (``conf/grid/*.yaml``) and their cells;
- :mod:`~scalar_ml.evaluation.checkpoints`: finding checkpoints (file, run/multirun dir, glob) and
  loading them weights-only with their training record;
- :mod:`~scalar_ml.evaluation.datasets`: a cell's test set from the ensemble cache;
- :mod:`~scalar_ml.evaluation.metrics`: per-cell metrics with standard errors;
- :mod:`~scalar_ml.evaluation.runner`: :func:`evaluate` (what ``evaluate.py`` calls): tidy CSV,
  summaries, figures, logger output;
- :mod:`~scalar_ml.evaluation.plots`: the figures and the data behind them;
- :mod:`~scalar_ml.evaluation.reproduce`: ``python -m scalar_ml.evaluation.reproduce``, the seed's
  experiments end to end (train, evaluate, ``docs/results.md``).

Kept light: importing this package loads neither torch nor matplotlib.
"""

from scalar_ml.evaluation.grid import Cell, Grid, list_grids, load_grid, parse_lattice

__all__ = ["Cell", "Grid", "list_grids", "load_grid", "parse_lattice"]
