"""Dual (flux) representation of the complex phi^4 field in 1+1D at chemical potential mu.

Public API (no torch import anywhere in this package):

- :class:`Theory`, :func:`get_theory`: the theory boundary: parameters, observables, channels and
  sampler as the rest of the package sees them (``theory``).
- :class:`PhysicsParams`, :class:`Lattice`: validated couplings and lattice (``params``).
- :class:`WeightTable`, :func:`log_weight`: :math:`\\log W(f)` tables, growing on demand (``weights``).
- :func:`flux_divergence`, :func:`site_f`, :func:`charge_density`, :func:`measure`: per-site and
  per-configuration quantities of ``(..., 4, Nt, Nx)`` configurations (``observables``).
- :class:`WormChains`: the numba worm / l-update Markov chains (``worm``).
- :func:`free_field_observables`: exact :math:`\\lambda = 0` values (``free_field``).
- :func:`autocorrelation`, :func:`tau_int`: Γ-method errors and :math:`\\tau_{\\rm int}` (``autocorr``).
- :func:`generate_ensemble`, :class:`Ensemble`: decorrelated ensembles from parallel chains (``ensemble``).
- :func:`sample_phi_reference`, :class:`PhiReferenceRun`: independent reference Monte Carlo in the
  field representation with phase reweighting, for validating the dual sampler on small lattices
  (``phi_reference``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562), so that ``import scalar_ml.physics.theory`` (done by every entry
# point) does not load numba and the sampler kernels.
_WHERE: dict[str, str] = {  # exported name -> its module
    "AutocorrResult": "scalar_ml.physics.autocorr",
    "autocorrelation": "scalar_ml.physics.autocorr",
    "tau_int": "scalar_ml.physics.autocorr",
    "Ensemble": "scalar_ml.physics.ensemble",
    "generate_ensemble": "scalar_ml.physics.ensemble",
    "free_field_observables": "scalar_ml.physics.free_field",
    "charge_density": "scalar_ml.physics.observables",
    "flux_divergence": "scalar_ml.physics.observables",
    "measure": "scalar_ml.physics.observables",
    "site_f": "scalar_ml.physics.observables",
    "site_phi_moments": "scalar_ml.physics.observables",
    "Lattice": "scalar_ml.physics.params",
    "PhysicsParams": "scalar_ml.physics.params",
    "PhiReferenceRun": "scalar_ml.physics.phi_reference",
    "sample_phi_reference": "scalar_ml.physics.phi_reference",
    "Quantity": "scalar_ml.physics.theory",
    "Theory": "scalar_ml.physics.theory",
    "get_theory": "scalar_ml.physics.theory",
    "WeightTable": "scalar_ml.physics.weights",
    "log_weight": "scalar_ml.physics.weights",
    "WormChains": "scalar_ml.physics.worm",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "AutocorrResult",
    "Ensemble",
    "Lattice",
    "PhiReferenceRun",
    "PhysicsParams",
    "Quantity",
    "Theory",
    "WeightTable",
    "WormChains",
    "autocorrelation",
    "charge_density",
    "flux_divergence",
    "free_field_observables",
    "generate_ensemble",
    "get_theory",
    "log_weight",
    "measure",
    "sample_phi_reference",
    "site_f",
    "site_phi_moments",
    "tau_int",
]
