"""Architecture search with Optuna through Hydra's ``-m`` (``python train.py -m hparams_search=counting_eq``).

- :mod:`~scalar_ml.search.space`: the flat ``model.arch`` point -> an EQ / ST / FL layer spec,
  checked on the training lattice (no torch import);
- :mod:`~scalar_ml.search.module`: the ``_target_`` of ``conf/model/searchable.yaml`` (a
  :class:`~scalar_ml.training.module.LatticeModule` built from ``model.arch``);
- :mod:`~scalar_ml.search.callback`: the Hydra callback of every search (study storage, resumed
  sampler seeds, the report at the end of the sweep);
- :mod:`~scalar_ml.search.report`: top-trials table, optimisation history and parameter importances;
- :mod:`~scalar_ml.search.retrain`: ``python -m scalar_ml.search.retrain <sweep dir>`` retrains a
  winner with several seeds;
- :mod:`~scalar_ml.search.aggregate`: ``python -m scalar_ml.search.aggregate <multirun dir>...``,
  mean and median of validation and test losses over seeds.

Recipes: docs/search.md.
"""

from scalar_ml.search.space import (
    ARCH_DEFAULTS,
    InvalidArchitectureError,
    arch_layers,
    arch_spec,
    describe_layers,
)

__all__ = [
    "ARCH_DEFAULTS",
    "InvalidArchitectureError",
    "arch_layers",
    "arch_spec",
    "describe_layers",
]
