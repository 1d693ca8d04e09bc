"""Digests of cached ensembles, in memory and on disk, for the cache tests.

A digest is the SHA-256 of the arrays ``configs, n, phi2, phi4`` in that order (C-contiguous
bytes): equal digests mean bit-identical data. (The worker scripts that the race tests run as
subprocesses compute the same digest inline.)
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from scalar_ml.physics.ensemble import Ensemble

ARRAYS = ("configs", "n", "phi2", "phi4")


def _digest(arrays: Iterable[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def ensemble_digest(ens: Ensemble) -> str:
    """Digest of an ensemble's arrays."""
    return _digest(getattr(ens, k) for k in ARRAYS)


def stored_digest(npz: Path) -> str:
    """Digest of a stored ``.npz`` entry, after checking that its zip members are intact."""
    with zipfile.ZipFile(npz) as z:
        assert z.testzip() is None, f"{npz} has a damaged member"
    with np.load(npz, allow_pickle=False) as z:
        return _digest(z[k] for k in ARRAYS)
