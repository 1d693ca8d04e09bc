"""Evaluate trained networks over grids of lattices x physics points x worm counts.

``python evaluate.py ckpt_path=PATH [grid=NAME] [overrides...]``: a thin Hydra entry; composition
happens here (``conf/evaluate.yaml``), the work in :func:`scalar_ml.evaluation.runner.evaluate`.
Outputs (tidy CSV, summaries, figures) land in the run directory. See README.md, "Evaluation".
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import scalar_ml  # noqa: F401  (registers the ${scalar_ml.*:} resolvers used by the configs)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Evaluate the checkpoints of ``cfg.ckpt_path`` over ``cfg.grid``."""
    from scalar_ml.evaluation.runner import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
