"""Dual (flux) representation of the complex phi^4 field in 1+1D (and 2+1D, 3+1D) at chemical
potential mu.

Public API (no torch import anywhere in this package):

- :class:`Theory`, :func:`get_theory`: the theory boundary: parameters, observables, channels and
  sampler as the rest of the package sees them (``theory``).
- :class:`PhysicsParams`, :class:`Lattice`: validated couplings and lattice (``params``).
- :class:`WeightTable`, :func:`log_weight`: :math:`\\log W(f)` tables, growing on demand (``weights``).
- :func:`flux_divergence`, :func:`site_f`, :func:`charge_density`, :func:`measure`: per-site and
  per-configuration quantities of ``(..., 4, Nt, Nx)`` configurations; :func:`log_dual_weight`:
  the logarithm of their dual weight (``observables``).
- :class:`LatticeSymmetry`, :func:`element`, :class:`SymmetryGroup`, :func:`generate_group`,
  :func:`symmetry_group`, :func:`common_symmetry_group`: reflections, the t↔x swap and charge conjugation acting on
  configurations, and the group of exact symmetries at given ``(mu, lattice)`` (``symmetry``).
- :class:`WormChains`: the numba worm / l-update Markov chains (``worm``); :class:`WormChainsND`,
  the same on 3D and 4D lattices, and :func:`worm_chains`, the chains for a lattice (``worm_nd``).
- :func:`charged_state_energy`: the energy of the lightest charged state from the worm's
  two-point function, the Silver Blaze onset's reference (``spectrum``).
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
    "log_dual_weight": "scalar_ml.physics.observables",
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
    "FIXED_MU_GROUP": "scalar_ml.physics.symmetry",
    "LatticeSymmetry": "scalar_ml.physics.symmetry",
    "SymmetryGroup": "scalar_ml.physics.symmetry",
    "common_symmetry_group": "scalar_ml.physics.symmetry",
    "element": "scalar_ml.physics.symmetry",
    "generate_group": "scalar_ml.physics.symmetry",
    "subgroup": "scalar_ml.physics.symmetry",
    "symmetry_group": "scalar_ml.physics.symmetry",
    "WeightTable": "scalar_ml.physics.weights",
    "log_weight": "scalar_ml.physics.weights",
    "WormChains": "scalar_ml.physics.worm",
    "WormChainsND": "scalar_ml.physics.worm_nd",
    "worm_chains": "scalar_ml.physics.worm_nd",
    "charged_state_energy": "scalar_ml.physics.spectrum",
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
    "FIXED_MU_GROUP",
    "AutocorrResult",
    "Ensemble",
    "Lattice",
    "LatticeSymmetry",
    "PhiReferenceRun",
    "PhysicsParams",
    "Quantity",
    "SymmetryGroup",
    "Theory",
    "WeightTable",
    "WormChains",
    "WormChainsND",
    "autocorrelation",
    "charge_density",
    "charged_state_energy",
    "common_symmetry_group",
    "element",
    "flux_divergence",
    "free_field_observables",
    "generate_ensemble",
    "generate_group",
    "get_theory",
    "log_dual_weight",
    "log_weight",
    "measure",
    "sample_phi_reference",
    "site_f",
    "site_phi_moments",
    "subgroup",
    "symmetry_group",
    "tau_int",
    "worm_chains",
]
