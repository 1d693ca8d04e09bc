"""Training: the LightningModule (:mod:`.module`) and ``train(cfg) -> metrics`` (:mod:`.train`).

Import the submodules directly (``from scalar_ml.training.train import train``); this package
itself imports nothing heavy, so ``python train.py --help`` stays fast.
"""
