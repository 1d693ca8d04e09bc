"""Data layer: the ensemble cache, flux-violation insertion and the Lightning data modules.

Kept light on purpose: importing :mod:`scalar_ml.data` loads numpy and :mod:`scalar_ml.physics`
(numba, for the ``Ensemble`` type), never torch; the data modules live in
:mod:`scalar_ml.data.datamodules` and are imported from there.
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
