"""Data layer: the ensemble cache (and, later, flux-violation insertion and data modules).

Kept light on purpose: importing :mod:`scalar_ml.data` loads numpy, filelock and
:mod:`scalar_ml.physics` (numba, for the ``Ensemble`` type), never torch.
"""

from scalar_ml.data.cache import (
    FORMAT_VERSION,
    CacheCorruptionWarning,
    EnsembleCache,
    EnsembleRequest,
    load_ensemble,
)

__all__ = [
    "FORMAT_VERSION",
    "CacheCorruptionWarning",
    "EnsembleCache",
    "EnsembleRequest",
    "load_ensemble",
]
