"""Train a network on one of the three tasks: ``python train.py task=counting model=eq``.

A thin Hydra entry: composition happens here (``conf/train.yaml``), the work in
:func:`scalar_ml.training.train.train`. Returns the objective (``optimized_metric``, finite even when
the loss diverged) for Hydra sweepers. Recipes: docs/training.md.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import scalar_ml  # noqa: F401  (registers the ${scalar_ml.*:} resolvers used by the configs)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train as configured by ``cfg``; return ``cfg.optimized_metric`` of the run."""
    from scalar_ml.training.train import run

    return run(cfg)


if __name__ == "__main__":
    main()
