"""Train a network on a task: ``python train.py task=counting model=eq``.

A thin Hydra entry: composition happens here (``conf/train.yaml``), the work in
:func:`scalar_ml.training.train.run`. Returns the objective (``optimized_metric``, finite even when
the loss diverged) for Hydra sweepers. A mistake in the input is printed as one line
(``train.py: error: ...``, exit 2; the traceback with ``HYDRA_FULL_ERROR=1``). Recipes: README.md,
"Training".
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import scalar_ml  # noqa: F401  (registers the ${scalar_ml.*:} resolvers used by the configs)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train as configured by ``cfg``; return ``cfg.optimized_metric`` of the run."""
    from scalar_ml.cli import report_user_errors
    from scalar_ml.training.train import holds_results, run

    with report_user_errors("train.py", keep=holds_results):
        return run(cfg)


if __name__ == "__main__":
    main()
