"""Train a network on a task: ``python train.py task=counting model=eq``.

The checkout's script for the training app :mod:`scalar_ml.train` (installed: ``scalar-ml-train``).
Configs: ``conf/train.yaml``; recipes: ``docs/training.md``.
"""

from scalar_ml.train import main

if __name__ == "__main__":
    main()
