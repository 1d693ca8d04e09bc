"""Ensembles of closed dual configurations (placeholder: the generator is being written)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Ensemble:
    """A set of closed configurations and their per-configuration observables.

    Attributes:
        configs: ``(N, 4, Nt, Nx)`` int32, channels ``[k_t, k_x, l_t, l_x]`` (SPEC §1).
        n: ``(N,)`` float64 charge density ``(1/V) Σ_x k_{x,t}``.
        phi2: ``(N,)`` float64 ``(1/V) Σ_x W(f_x+2)/W(f_x)``.
        phi4: ``(N,)`` float64 ``(1/V) Σ_x W(f_x+4)/W(f_x)``.
        meta: JSON-serialisable metadata (parameters, seed, tau_int, acceptance, timings, version).
    """

    configs: np.ndarray
    n: np.ndarray
    phi2: np.ndarray
    phi4: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.configs.shape[0])
