"""Evaluate trained networks over grids of lattices x physics points x worm counts.

``python evaluate.py ckpt_path=PATH [grid=NAME] [overrides...]``: a thin Hydra entry; composition
happens here (``conf/evaluate.yaml``), the work in :func:`scalar_ml.evaluation.runner.evaluate`.
Outputs (tidy CSV, summaries, figures) land in the run directory. A mistake in the input is printed
as one line (``evaluate.py: error: ...``, exit 2). See README.md, "Evaluation".
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import scalar_ml  # noqa: F401  (registers the ${scalar_ml.*:} resolvers used by the configs)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Evaluate the checkpoints of ``cfg.ckpt_path`` over ``cfg.grid``."""
    from scalar_ml.cli import report_user_errors
    from scalar_ml.evaluation.runner import EVALUATION_FILE, evaluate

    with report_user_errors("evaluate.py", keep=lambda d: (d / EVALUATION_FILE).exists()):
        evaluate(cfg)


if __name__ == "__main__":
    main()
