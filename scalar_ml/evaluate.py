"""The evaluation app: ``python evaluate.py ckpt_path=PATH [grid=NAME]`` in a checkout,
``scalar-ml-evaluate`` or ``python -m scalar_ml.evaluate`` anywhere the package is installed.

Evaluates trained networks over grids of lattices x physics points x worm counts. A thin Hydra
entry on ``conf/evaluate.yaml`` (:data:`scalar_ml.paths.CONF_DIR`); the work happens in
:func:`scalar_ml.evaluation.runner.evaluate`. Outputs (tidy CSV, summaries, figures) land in the run
directory. A mistake in the input is printed as one line (``evaluate.py: error: ...``, exit 2; see
:mod:`scalar_ml.cli`). Docs: ``docs/evaluation.md``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from scalar_ml.cli import hydra_app, report_user_errors

__all__ = ["main"]


@hydra_app("evaluate", prog="evaluate.py")
def main(cfg: DictConfig) -> None:
    """Evaluate the checkpoints of ``cfg.ckpt_path`` over ``cfg.grid``."""
    from scalar_ml.evaluation.runner import EVALUATION_FILE, evaluate

    with report_user_errors("evaluate.py", keep=lambda d: (d / EVALUATION_FILE).exists()):
        evaluate(cfg)


if __name__ == "__main__":
    main()
