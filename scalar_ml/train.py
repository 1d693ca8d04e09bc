"""The training app: ``python train.py task=counting model=eq`` in a checkout, ``scalar-ml-train``
or ``python -m scalar_ml.train`` anywhere the package is installed.

A thin Hydra entry on ``conf/train.yaml`` (:data:`scalar_ml.paths.CONF_DIR`); the work happens in
:func:`scalar_ml.training.train.run`, which returns the objective (``optimized_metric``, finite even
when the loss diverged) for Hydra sweepers. A mistake in the input is printed as one line
(``train.py: error: ...``, exit 2; the traceback with ``HYDRA_FULL_ERROR=1``; see
:mod:`scalar_ml.cli`). Recipes: ``docs/training.md``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from scalar_ml.cli import hydra_app, report_user_errors

__all__ = ["main"]


@hydra_app("train", prog="train.py")
def main(cfg: DictConfig) -> float | None:
    """Train as configured by ``cfg``; return ``cfg.optimized_metric`` of the run."""
    from scalar_ml.training.train import holds_results, run

    with report_user_errors("train.py", keep=holds_results):
        return run(cfg)


if __name__ == "__main__":
    main()
