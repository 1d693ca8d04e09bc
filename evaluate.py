"""Evaluate trained networks over grids: ``python evaluate.py ckpt_path=PATH [grid=NAME]``.

The checkout's script for the evaluation app :mod:`scalar_ml.evaluate` (installed:
``scalar-ml-evaluate``). Configs: ``conf/evaluate.yaml``; docs: ``docs/evaluation.md``.
"""

from scalar_ml.evaluate import main

if __name__ == "__main__":
    main()
